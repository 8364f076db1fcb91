"""What training needs from tracking: the :class:`Tracker` protocol, :class:`NullTracker` (tracking
off) and :func:`make_tracker`, which turns the Trainer's ``tracker=`` argument into a Tracker.

The Trainer talks to a tracker only through the protocol, so another backend can be added without
touching it.

>>> tracker = make_tracker(None)
>>> tracker.start() is None, tracker.run_id
(True, None)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cleanfit.errors import ConfigError
from cleanfit.tracking.mlflow_tracker import MLflowTracker
from cleanfit.tracking.unlogged import TrackingWarning

__all__ = ["Tracker", "NullTracker", "TrackingWarning", "make_tracker"]


@runtime_checkable
class Tracker(Protocol):
    """What the Trainer needs from an experiment tracker (see docs/INTERNALS.md)."""

    run_id: str | None

    def start(self, *, run_id: str | None = None) -> str | None: ...
    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, str]) -> None: ...
    def flush(self) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


class NullTracker:
    """Tracking off: every call does nothing and ``run_id`` stays None.

    >>> NullTracker().log_metrics({"loss": 0.5}, step=1)
    """

    run_id: str | None = None

    def start(self, *, run_id: str | None = None) -> str | None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def flush(self) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass

    def __repr__(self) -> str:
        return "NullTracker()"


def make_tracker(tracker: Tracker | str | None) -> Tracker:
    """``None`` -> :class:`NullTracker`, ``"mlflow"`` -> :class:`MLflowTracker`, a Tracker -> itself.

    >>> make_tracker("mlflow")
    MLflowTracker(experiment='cleanfit')
    >>> make_tracker("wandb")
    Traceback (most recent call last):
    cleanfit.errors.ConfigError: tracker='wandb' is not a tracker: use None (no tracking), "mlflow", or an object with the Tracker methods (start, log_params, log_metrics, log_artifact, set_tags, flush, finish)
    """
    if tracker is None:
        return NullTracker()
    if isinstance(tracker, str) and tracker.lower() == "mlflow":
        return MLflowTracker()
    if not isinstance(tracker, str) and isinstance(tracker, Tracker):
        return tracker
    raise ConfigError(
        f"tracker={tracker!r} is not a tracker: use None (no tracking), \"mlflow\", or an object with "
        "the Tracker methods (start, log_params, log_metrics, log_artifact, set_tags, flush, finish)"
    )
