"""Checkpoints that verify (a valid checksum, written by cleanfit's own writer) but hold a wrong
structure: the resume falls back to the previous valid checkpoint and ends bit-identical to the
uninterrupted run, or, with no valid one left, raises CheckpointError; never KeyError, RuntimeError
or TypeError from deep inside torch."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import cleanfit as cf
from cleanfit.training.checkpoints import CheckpointManager, CheckpointWarning


def _trainer(directory: Path | None) -> cf.Trainer:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return cf.Trainer(model, optimizer, loss=torch.nn.functional.cross_entropy, device="cpu", seed=1,
                      checkpoint_dir=directory, checkpoint_every=1 if directory else None, keep_last=5, progress=False, report=False)


def _fit(trainer: cf.Trainer, resume: Any = False) -> cf.History:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 4)).astype("float32")
    y = (X[:, 0] > 0).astype("int64")
    return trainer.fit(cf.Batches((X, y), 8, seed=2), epochs=2, resume=resume)


def _reshaped(state: dict) -> None:
    state["model"]["0.weight"] = torch.zeros(3, 3)


CRAFTED: dict[str, Callable[[dict], Any]] = {
    "identity missing": lambda s: s.pop("identity"),
    "model missing": lambda s: s.pop("model"),
    "tensor of another shape": _reshaped,
    "model tensor dropped": lambda s: s["model"].pop("2.bias"),
    "optimizer replaced": lambda s: s.__setitem__("optimizer", "adam"),
    "optimizer groups replaced": lambda s: s["optimizer"].__setitem__("param_groups", []),
    "history replaced": lambda s: s.__setitem__("history", 5),
    "history rows replaced": lambda s: s["history"].__setitem__("epochs", [1, 2]),
    "totals replaced": lambda s: s.__setitem__("totals", []),
    "totals emptied": lambda s: s.__setitem__("totals", {}),
    "epoch replaced": lambda s: s.__setitem__("epoch", "1"),
    "negative step": lambda s: s.__setitem__("step", -4),
    "batches position replaced": lambda s: s.__setitem__("train_batches", None),
}


def _craft(directory: Path, change: Callable[[dict], Any], *, newest_only: bool = True) -> None:
    """Rewrite checkpoints (the newest, or all) with ``change`` applied, through the project's writer."""
    manager = CheckpointManager(directory, keep_last=5)
    for path in manager.list()[:1] if newest_only else manager.list():
        state = manager.load(path)
        change(state)
        step = int(path.stem.split("-")[1])
        manager.save(state, step=step, epoch=0, metric=None)  # a valid checksum around a wrong structure


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, case: str) -> None:
    reference = _trainer(None)
    _fit(reference)
    _fit(_trainer(tmp_path))
    _craft(tmp_path, CRAFTED[case])

    resumed = _trainer(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(resumed, resume=True)
    assert any(issubclass(w.category, CheckpointWarning) and "skipped 1 invalid" in str(w.message) for w in caught)
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name  # replayed the last step exactly


@pytest.mark.parametrize("case", ["model missing", "tensor of another shape", "optimizer replaced", "epoch replaced"])
def test_no_valid_checkpoint_left_is_a_checkpoint_error(tmp_path: Path, case: str) -> None:
    _fit(_trainer(tmp_path))
    _craft(tmp_path, CRAFTED[case], newest_only=False)
    with pytest.raises(cf.CheckpointError, match="none of the .* checkpoints .* is valid.*not this run's training state"):
        _fit(_trainer(tmp_path), resume=True)
    newest = CheckpointManager(tmp_path).list()[0]
    with pytest.raises(cf.CheckpointError, match="not this run's training state"):
        _fit(_trainer(tmp_path), resume=str(newest))
