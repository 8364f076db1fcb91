"""Device placement: pick the best device and move nested batches onto it.

>>> pick_device("cpu")
device(type='cpu')
>>> import numpy as np
>>> to_device({"x": np.zeros((2, 3), dtype=np.float32), "ids": [1, 2]}, "cpu")["x"].shape
torch.Size([2, 3])
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cleanfit.errors import ConfigError


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA, else MPS, else CPU; check that any other device exists."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device={device!r} is not a device; use 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} was asked for but CUDA is not available here; use device='auto' or 'cpu'")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(
            f"device={device!r} was asked for but this machine has {count} CUDA device{'s' * (count != 1)} "
            f"(cuda:0 .. cuda:{count - 1}); use one of those or device='auto'"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device!r} was asked for but MPS is not available here; use device='auto' or 'cpu'")
    return resolved


def to_device(batch: Any, device: str | torch.device, *, non_blocking: bool | None = None) -> Any:
    """Move every tensor in a nested batch (tuples, lists, dicts, dataclasses) to ``device``.

    NumPy arrays become tensors (without a copy where the dtype allows). A transfer is
    ``non_blocking`` when the source tensor is pinned, unless ``non_blocking`` says otherwise.
    Other leaves (strings, numbers, None) are returned unchanged.
    """
    if not isinstance(device, torch.device):
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"device={device!r} is not a device; use 'cpu', 'cuda', 'cuda:1' or 'mps'") from exc
    return _move(batch, device, non_blocking)


def _move(obj: Any, device: torch.device, non_blocking: bool | None) -> Any:
    if isinstance(obj, torch.Tensor):
        if obj.device == device:
            return obj
        asynchronous = obj.is_pinned() if non_blocking is None else non_blocking
        return obj.to(device, non_blocking=asynchronous)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biufc":
            return _move(torch.from_numpy(np.ascontiguousarray(obj)), device, non_blocking)
        return obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(_move(v, device, non_blocking) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_move(v, device, non_blocking) for v in obj)
    if isinstance(obj, Mapping):
        moved = {k: _move(v, device, non_blocking) for k, v in obj.items()}
        if type(obj) is dict:
            return moved
        if isinstance(obj, collections.defaultdict):
            return type(obj)(obj.default_factory, moved)
        return type(obj)(moved)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: _move(getattr(obj, f.name), device, non_blocking) for f in dataclasses.fields(obj) if f.init}
        return dataclasses.replace(obj, **changes)
    return obj


def pin(batch: Any) -> Any:
    """Pin every CPU tensor of a nested batch (for asynchronous host-to-GPU copies)."""
    if not torch.cuda.is_available():
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory() if batch.device.type == "cpu" else batch
    if isinstance(batch, np.ndarray) and batch.dtype.kind in "biufc":
        return torch.from_numpy(np.ascontiguousarray(batch)).pin_memory()
    if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
        return type(batch)(pin(v) for v in batch)
    if isinstance(batch, dict):
        return {k: pin(v) for k, v in batch.items()}
    return batch
