"""Tracking: where a run's parameters, metrics and artifacts go.

``base`` holds the :class:`Tracker` protocol, :class:`NullTracker` and :func:`make_tracker` (what
training calls); ``mlflow_tracker`` the MLflow implementation, with its sender process (``worker``),
the fallback file for values MLflow missed (``unlogged``) and the environment parameters
(``environment``). MLflow itself is imported only when an MLflow tracker starts.

May import: ``cleanfit.data`` and ``cleanfit._util``.
"""

from __future__ import annotations

from cleanfit.tracking.mlflow_tracker import MLflowTracker, NullTracker, Tracker, TrackingWarning, make_tracker

__all__ = ["Tracker", "NullTracker", "MLflowTracker", "TrackingWarning", "make_tracker"]
