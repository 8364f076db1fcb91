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

from cleanfit.errors import ConfigError

__all__ = ["check_compile", "compiled", "plain_keys"]

_PREFIX = "_orig_mod."


def compiled(net: torch.nn.Module, setting: bool | str) -> torch.nn.Module:
    """``torch.compile(net)`` for ``True`` (its default backend, inductor), ``torch.compile(net, backend=name)``
    for a backend name such as ``"aot_eager"`` (no C++ toolchain needed), ``net`` for ``False``."""
    if setting is False:
        return net
    return torch.compile(net) if setting is True else torch.compile(net, backend=setting)


def check_compile(setting: object) -> bool | str:
    """``Trainer(compile=...)``: True, False, or the name of a torch.compile backend."""
    if isinstance(setting, bool):
        return setting
    import torch._dynamo  # heavy (seconds): only when a backend is named

    backends = torch._dynamo.list_backends(exclude_tags=())
    if isinstance(setting, str) and setting in backends:
        return setting
    raise ConfigError(f"Trainer(compile={setting!r}) must be True (torch.compile), False, or a torch.compile backend "
                      f"name (e.g. {', '.join(b for b in backends if b in ('inductor', 'aot_eager', 'eager'))}).")


def plain_keys(state: dict[str, Any]) -> dict[str, Any]:
    """A module state with every ``_orig_mod.`` (torch.compile's wrapper) taken out of its keys."""
    if not any(_PREFIX in key for key in state):
        return state
    return type(state)((key.replace(_PREFIX, ""), value) for key, value in state.items())
