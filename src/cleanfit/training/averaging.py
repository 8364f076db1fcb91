"""``Trainer(ema=decay)``: an exponential moving average of the weights, torch's own ``AveragedModel``.

``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)``: the first update
copies the weights (and buffers), later ones compute ``avg = decay * avg + (1 - decay) * weights``. The
Trainer updates it after every optimizer step that was taken, evaluates and predicts with it, puts it in
the checkpoint (a resume continues it exactly) and at the end of ``fit`` copies it into the model.

>>> import torch
>>> model = torch.nn.Linear(1, 1, bias=False)
>>> ema = Ema(model, 0.5)
>>> for w in (1.0, 3.0):
...     with torch.no_grad(): _ = model.weight.fill_(w)
...     ema.update(model)
>>> ema.module.weight.item()  # 1.0 first (a copy), then 0.5 * 1.0 + 0.5 * 3.0
2.0
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cleanfit.errors import ConfigError

__all__ = ["Ema", "check_decay"]


def check_decay(decay: Any) -> float | None:
    """``ema=`` of the Trainer: None (off) or a decay in (0, 1)."""
    if decay is None:
        return None
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 < decay < 1.0:
        raise ConfigError(f"Trainer(ema={decay!r}) must be a decay in (0, 1), e.g. 0.999 (or None for no average).")
    return float(decay)


class Ema:
    """The moving average of ``model``'s parameters and buffers."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def module(self) -> torch.nn.Module:
        """The averaged model (the same class as the model), for evaluation and prediction."""
        return self.averaged.module

    def update(self, model: torch.nn.Module) -> None:
        self.averaged.update_parameters(model)

    def copy_to(self, model: torch.nn.Module) -> None:
        """Load the averaged weights into ``model`` (the end of ``fit``)."""
        model.load_state_dict(self.averaged.module.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
