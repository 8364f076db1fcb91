"""Tracking: where a run's parameters, metrics and artifacts go.

``base`` holds the :class:`Tracker` protocol, :class:`NullTracker` and :func:`make_tracker` (what
training calls); ``mlflow_tracker`` the MLflow implementation, with its sender process (``sender``
owns it, ``worker`` is it), the fallback file for values MLflow missed (``unlogged``, which also
defines :class:`TrackingWarning`), its replay (``replay``) and the environment parameters
(``environment``). MLflow itself is imported only in the sender process.

May import: ``cleanfit.data`` and ``cleanfit._util``.
"""

from __future__ import annotations

from cleanfit.tracking.base import NullTracker, Tracker, TrackingWarning, make_tracker
from cleanfit.tracking.environment import data_fingerprint, environment_params
from cleanfit.tracking.mlflow_tracker import MLflowTracker
from cleanfit.tracking.replay import replay_unlogged

__all__ = [
    "Tracker", "NullTracker", "MLflowTracker", "TrackingWarning", "make_tracker",
    "environment_params", "data_fingerprint", "replay_unlogged",
]
