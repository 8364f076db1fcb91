"""``Trainer(compile=True)``: the training forward runs through ``torch.compile``; state stays plain.

``torch.compile(module)`` returns a wrapper whose ``state_dict()`` keys start with ``_orig_mod.``. The
Trainer compiles only its training network (the model, or its DDP wrapper) and keeps the plain module for
checkpoints, evaluation and saved models, so a checkpoint has the plain keys whether or not it was
compiled; :func:`plain_keys` also lets a state written from a compiled module load into a plain one.

>>> plain_keys({"_orig_mod.0.weight": 1, "1.bias": 2})
{'0.weight': 1, '1.bias': 2}
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["compiled", "plain_keys"]

_PREFIX = "_orig_mod."


def compiled(net: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(net)`` when ``enabled``, else ``net``."""
    return torch.compile(net) if enabled else net


def plain_keys(state: dict[str, Any]) -> dict[str, Any]:
    """A module state with every ``_orig_mod.`` (torch.compile's wrapper) taken out of its keys."""
    if not any(_PREFIX in key for key in state):
        return state
    return type(state)((key.replace(_PREFIX, ""), value) for key, value in state.items())
