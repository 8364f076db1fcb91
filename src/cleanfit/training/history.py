"""History: what happened in a run, one row per epoch, and a reading of the loss curve.

>>> h = History()
>>> h.add_epoch({"epoch": 1, "step": 10, "train_loss": 0.9, "val_loss": 1.0, "lr": 1e-3})
>>> h.add_epoch({"epoch": 2, "step": 20, "train_loss": 0.5, "val_loss": 0.6, "lr": 1e-3})
>>> h.column("val_loss")
[1.0, 0.6]
>>> History.from_dict(h.to_dict()) == h
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Iterator

from cleanfit.findings import Finding
from cleanfit.training.advice import Advice
from cleanfit.training.diagnosis import diagnose  # which imports History for type checking only

__all__ = ["History"]

_EPOCH_KEYS = ("epoch", "step", "train_loss", "val_loss", "lr", "grad_norm", "skipped_steps")


class History:
    """The record of a training run.

    ``epochs``: one dict per epoch with ``epoch`` (1-based), ``step`` (optimizer steps so far),
    ``train_loss``, ``val_loss`` (None without validation data), ``lr``, ``grad_norm`` (the mean
    pre-clip gradient norm, None without clipping), ``skipped_steps`` (fp16 overflow) and each
    metric as ``val_<name>``.

    ``steps``: one dict per logged optimizer step with ``step``, ``epoch``, ``train_loss`` (the mean
    over the optimizer steps since the previous entry) and ``lr``. A non-finite loss is recorded
    here as NaN/inf before training stops.
    """

    def __init__(self, epochs: list[dict[str, Any]] | None = None, steps: list[dict[str, Any]] | None = None) -> None:
        self.epochs: list[dict[str, Any]] = list(epochs or [])
        self.steps: list[dict[str, Any]] = list(steps or [])

    def add_epoch(self, row: dict[str, Any]) -> None:
        """Append one epoch's row."""
        self.epochs.append(dict(row))

    def add_step(self, row: dict[str, Any]) -> None:
        """Append one logged optimizer step."""
        self.steps.append(dict(row))

    def column(self, key: str) -> list[Any]:
        """The values of ``key`` over the epochs (None where missing)."""
        return [row.get(key) for row in self.epochs]

    @property
    def last(self) -> dict[str, Any]:
        """The last epoch's row (empty before the first epoch ends)."""
        return self.epochs[-1] if self.epochs else {}

    def __len__(self) -> int:
        return len(self.epochs)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.epochs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, History):
            return NotImplemented
        return _same(self.to_dict(), other.to_dict())

    def diagnose(self, *, audit: Any = None, baseline: Mapping[str, float] | None = None,
                 advice: Advice | None = None) -> list[Finding]:
        """Read the loss curve: findings with ids ``diverging``, ``flat``, ``overfitting``,
        ``unstable``, ``too-good``, each with its evidence and plain advice (empty when healthy).

        With no arguments it reads the curve alone. ``audit`` (the run's audit report) and ``baseline``
        (``{"val_accuracy": ...}`` of a simple model on the same split) turn a near perfect score into an
        ``info`` when the audit found no leak and the simple model is about as good; ``advice``
        (:class:`~cleanfit.training.advice.Advice`) words the hints for a config, and leaves out what the
        run already does.
        """
        return diagnose(self, audit=audit, baseline=baseline, advice=advice)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists of plain dicts (JSON-friendly apart from NaN; loadable with weights_only)."""
        return {"epochs": [dict(r) for r in self.epochs], "steps": [dict(r) for r in self.steps]}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> History:
        return cls(epochs=state.get("epochs"), steps=state.get("steps"))

    def to_frame(self) -> Any:
        """The epochs as a pandas DataFrame."""
        import pandas as pd  # heavy, and only this method needs it

        return pd.DataFrame(self.epochs)

    def __repr__(self) -> str:
        if not self.epochs:
            return "History(no epochs)"
        last = self.epochs[-1]
        shown = ", ".join(f"{k}={_fmt(last[k])}" for k in _EPOCH_KEYS[2:5] if last.get(k) is not None)
        return f"History({len(self.epochs)} epochs; last: {shown})"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN (a diverged run equals its own copy)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)
