"""Mixed precision: which dtype the forward pass runs in, and the fp16 gradient scaler.

One small object does the three things a training step needs from precision, each where it acts:

    with precision.autocast():        # forward + loss in bf16/fp16 (a no-op for fp32)
        loss = loss_fn(model(x), y)
    precision.backward(loss)          # fp16: scaled, so small gradients do not underflow
    precision.unscale_(optimizer)     # fp16: true gradients again, before clipping
    stepped = precision.step(optimizer)   # False when fp16 found inf/NaN gradients and skipped

``"auto"`` picks bf16 where the device runs it well (a CUDA GPU with bf16 support), else fp32.

>>> p = Precision("auto", torch.device("cpu"))
>>> p.name, p.scaler is None
('fp32', True)
>>> Precision("fp16", torch.device("cpu")).scaler is not None
True
"""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

from cleanfit.errors import ConfigError

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "auto")
_NO_CONTEXT = contextlib.nullcontext()  # reusable: entering it does nothing
_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``"auto"`` into ``"bf16"`` or ``"fp32"`` for ``device``; check any other value.

    >>> resolve_precision("auto", torch.device("cpu"))
    'fp32'
    >>> resolve_precision("bf16", torch.device("cpu"))
    'bf16'
    """
    if precision not in PRECISIONS:
        raise ConfigError(
            f"Trainer(precision={precision!r}) is not a precision; use one of {', '.join(PRECISIONS)}."
        )
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


class Precision:
    """Autocast and (for fp16) a :class:`torch.amp.GradScaler` for one device."""

    def __init__(self, precision: str, device: torch.device) -> None:
        self.name = resolve_precision(precision, device)
        self.device_type = device.type
        self.dtype = _DTYPES[self.name]
        self.scaler: torch.amp.GradScaler | None = (
            torch.amp.GradScaler(device.type) if self.name == "fp16" else None
        )

    def autocast(self) -> ContextManager[Any]:
        """The context the forward pass and the loss run in."""
        if self.dtype is None:
            return _NO_CONTEXT
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` (scaled first under fp16)."""
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        loss.backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the fp16 loss scale, so clipping sees the true norm."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Step the optimizer; return False when fp16 skipped the step (inf/NaN gradients)."""
        if self.scaler is None:
            optimizer.step()
            return True
        scale_before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        # The scaler lowers its scale exactly when it found inf/NaN gradients and skipped the step.
        return self.scaler.get_scale() >= scale_before

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state (empty without a scaler)."""
        return {} if self.scaler is None else dict(self.scaler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)

    def __repr__(self) -> str:
        return f"Precision({self.name!r}, device_type={self.device_type!r})"
