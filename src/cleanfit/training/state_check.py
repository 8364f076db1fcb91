"""Is a checkpoint's content the shape of this run's training state? Checked before anything is restored.

A checkpoint's checksum proves that its bytes are the ones written, not that a cleanfit Trainer wrote
them for this run: a crafted or hand-edited file can verify and still lack the model, hold a tensor
of another shape, or have an optimizer, history, totals or epoch of the wrong kind. Restoring such a
state fails deep inside torch (KeyError, RuntimeError, TypeError). :func:`check_structure` compares
it with the state a fresh run would save (``TrainState.state_dict()``, the template) and raises
:class:`~cleanfit.errors.CheckpointError` naming what differs, so a resume falls back to the
previous valid checkpoint (see ``CheckpointManager.resolve(check=...)``).

    >>> import torch
    >>> template = {"model": {"w": torch.zeros(2, 3)}, "epoch": 0}
    >>> check_structure({"model": {"w": torch.ones(2, 3)}, "epoch": 4}, template)
    >>> check_structure({"model": {"w": torch.ones(3)}, "epoch": "4"}, template, "step-8.ckpt")
    Traceback (most recent call last):
    ...
    cleanfit.errors.CheckpointError: step-8.ckpt verifies, but it is not this run's training state ('epoch' is a str, expected an int; model['w'] has shape [3], expected [2, 3]); ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

from cleanfit.errors import CheckpointError

__all__ = ["check_structure"]

_MAY_BE_NONE = {"best_metric", "run_id", "early_stopping"}
_COUNTS = ("epoch", "step", "micro_step")


def check_structure(saved: Any, template: Mapping[str, Any], source: Any = None) -> None:
    """Raise CheckpointError unless ``saved`` has the keys, kinds and tensor shapes of ``template``."""
    problems = list(_problems(saved, template))
    if problems:
        raise CheckpointError(
            f"{source or 'the checkpoint'} verifies, but it is not this run's training state "
            f"({'; '.join(problems[:6])}); it was not written by cleanfit.Trainer for this model: resume "
            "from another checkpoint, or delete this one"
        )


def _problems(saved: Any, template: Mapping[str, Any]) -> Iterator[str]:
    if not isinstance(saved, Mapping):
        yield f"a {type(saved).__name__} instead of a dict"
        return
    for key, expected in template.items():
        if key not in saved:
            yield f"{key!r} is missing"
        elif not (saved[key] is None and (key in _MAY_BE_NONE or expected is None)):
            yield from _kind(repr(key), saved[key], expected)
    for key in _COUNTS:
        value = saved.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            yield f"{key!r} is {value}, expected a count >= 0"
    if isinstance(saved.get("model"), Mapping) and "model" in template:
        yield from _tensors("model", saved["model"], template["model"])
    if isinstance(saved.get("optimizer"), Mapping) and "optimizer" in template:
        yield from _optimizer(saved["optimizer"], template["optimizer"])
    if isinstance(saved.get("totals"), Mapping) and "totals" in template:
        yield from (f"totals[{k!r}] is missing" for k in template["totals"] if k not in saved["totals"])
    if isinstance(saved.get("history"), Mapping):
        for part in ("epochs", "steps"):
            value = saved["history"].get(part, [])
            if not isinstance(value, list) or not all(isinstance(row, Mapping) for row in value):
                yield f"history[{part!r}] is not a list of dicts"


def _kind(name: str, value: Any, expected: Any) -> Iterator[str]:
    if expected is None:
        return
    if isinstance(expected, bool):
        kinds: tuple[type, ...] = (bool,)
    elif isinstance(expected, int):
        kinds = (int,)
    elif isinstance(expected, float):
        kinds = (int, float)
    elif isinstance(expected, Mapping):
        kinds = (Mapping,)
    else:
        kinds = (type(expected),) if isinstance(expected, (str, list, torch.Tensor)) else (object,)
    if not isinstance(value, kinds) or (kinds == (int,) and isinstance(value, bool)):
        article = "an" if kinds[0].__name__[0] in "aeiouAEIOU" else "a"
        yield f"{name} is a {type(value).__name__}, expected {article} {kinds[0].__name__}"


def _tensors(name: str, saved: Mapping[str, Any], template: Mapping[str, Any]) -> Iterator[str]:
    missing = [k for k in template if k not in saved]
    extra = [k for k in saved if k not in template]
    if missing:
        yield f"{name} lacks {', '.join(map(repr, missing[:3]))}"
    if extra:
        yield f"{name} has unknown {', '.join(map(repr, extra[:3]))}"
    for key, expected in template.items():
        value = saved.get(key)
        if key not in saved or not isinstance(expected, torch.Tensor):
            continue
        if not isinstance(value, torch.Tensor):
            yield f"{name}[{key!r}] is a {type(value).__name__}, expected a tensor"
        elif value.shape != expected.shape:
            yield f"{name}[{key!r}] has shape {list(value.shape)}, expected {list(expected.shape)}"
        elif value.dtype != expected.dtype:
            yield f"{name}[{key!r}] is {value.dtype}, expected {expected.dtype}"


def _optimizer(saved: Mapping[str, Any], template: Mapping[str, Any]) -> Iterator[str]:
    groups, expected = saved.get("param_groups"), template.get("param_groups", [])
    if not isinstance(saved.get("state"), Mapping):
        yield "optimizer['state'] is not a dict"
    if not isinstance(groups, list) or not all(isinstance(g, Mapping) for g in groups):
        yield "optimizer['param_groups'] is not a list of dicts"
        return
    sizes = [len(g.get("params", ())) if isinstance(g.get("params"), list) else -1 for g in groups]
    if sizes != [len(g["params"]) for g in expected]:
        yield f"optimizer has parameter groups of sizes {sizes}, expected {[len(g['params']) for g in expected]}"
