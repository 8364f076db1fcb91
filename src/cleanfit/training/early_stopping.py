"""EarlyStopping: stop when the monitored value has not improved for ``patience`` epochs.

>>> es = EarlyStopping(patience=2)
>>> [es.update({"epoch": e, "val_loss": v}) for e, v in enumerate([1.0, 0.8, 0.9, 0.85], start=1)]
[False, False, False, True]
>>> es.best_, es.best_epoch_
(0.8, 2)
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch

from cleanfit.errors import ConfigError

__all__ = ["EarlyStopping"]

_LOWER_IS_BETTER = ("loss", "rmse", "mae", "error", "mse", "perplexity", "nll")


class EarlyStopping:
    """Stop training after ``patience`` epochs without an improvement of at least ``min_delta``.

    ``monitor`` is a key of the epoch rows of :class:`~cleanfit.training.history.History`
    (``"val_loss"``, ``"val_accuracy"``, ...). ``mode="auto"`` minimises losses and errors and
    maximises anything else; ``restore_best=True`` puts the best epoch's weights back into the model
    when training stops.
    """

    def __init__(
        self,
        patience: int,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        *,
        mode: str = "auto",
        restore_best: bool = False,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"EarlyStopping(patience={patience!r}) must be an int >= 1 (epochs without improvement).")
        if not isinstance(monitor, str) or not monitor:
            raise ConfigError(f"EarlyStopping(monitor={monitor!r}) must name an epoch value: 'val_loss', 'train_loss' "
                              "or 'val_<metric>' (e.g. 'val_accuracy').")
        if isinstance(min_delta, bool) or not isinstance(min_delta, numbers.Real) or not min_delta >= 0:
            raise ConfigError(f"EarlyStopping(min_delta={min_delta!r}) must be a number >= 0 (the smallest change "
                              "that counts as an improvement).")
        if mode == "auto":
            mode = "min" if any(word in monitor for word in _LOWER_IS_BETTER) else "max"
        if mode not in ("min", "max"):
            raise ConfigError(f"EarlyStopping(mode={mode!r}) must be 'min', 'max' or 'auto'.")
        self.patience = patience
        self.monitor = monitor
        self.min_delta = float(min_delta)
        self.mode = mode
        self.restore_best = restore_best
        self.best_: float | None = None
        self.best_epoch_: int | None = None
        self.bad_epochs_ = 0
        self.stopped_ = False
        self.best_weights_: dict[str, torch.Tensor] | None = None
        self.reset()

    def reset(self) -> None:
        """Forget what was learned (a new ``fit`` starts here)."""
        self.best_, self.best_epoch_, self.bad_epochs_, self.stopped_ = None, None, 0, False
        self.best_weights_ = None

    def _improved(self, value: float) -> bool:
        if self.best_ is None:
            return True
        if self.mode == "min":
            return value < self.best_ - self.min_delta
        return value > self.best_ + self.min_delta

    def update(self, row: dict[str, Any], model: torch.nn.Module | None = None) -> bool:
        """Record one epoch's row; return True when training should stop now."""
        if self.monitor not in row or row[self.monitor] is None:
            raise ConfigError(
                f"EarlyStopping(monitor={self.monitor!r}) but the epoch rows have no such value "
                f"(they have {', '.join(k for k, v in row.items() if v is not None)}); pass val batches to fit() "
                "or monitor one of those."
            )
        value = float(row[self.monitor])
        if math.isfinite(value) and self._improved(value):
            self.best_, self.best_epoch_, self.bad_epochs_ = value, int(row.get("epoch", 0)), 0
            if self.restore_best and model is not None:
                self.best_weights_ = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.bad_epochs_ += 1
        self.stopped_ = self.bad_epochs_ >= self.patience
        return self.stopped_

    def restore(self, model: torch.nn.Module) -> bool:
        """Load the best epoch's weights into ``model`` (with ``restore_best``); True when it did."""
        if not self.restore_best or self.best_weights_ is None:
            return False
        model.load_state_dict(self.best_weights_)
        return True

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"best": self.best_, "best_epoch": self.best_epoch_, "bad_epochs": self.bad_epochs_,
                                 "stopped": self.stopped_}
        if self.best_weights_ is not None:
            state["best_weights"] = self.best_weights_
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_, self.best_epoch_ = state["best"], state["best_epoch"]
        self.bad_epochs_, self.stopped_ = int(state["bad_epochs"]), bool(state["stopped"])
        self.best_weights_ = state.get("best_weights")

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, monitor={self.monitor!r}, min_delta={self.min_delta}, "
                f"mode={self.mode!r}, restore_best={self.restore_best})")
