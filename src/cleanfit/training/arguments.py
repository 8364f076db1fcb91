"""Validation at the Trainer's public boundary: arguments and batches, with messages that say the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cleanfit._util.args import is_path, is_positive
from cleanfit.data.batches import Batches
from cleanfit.errors import CheckpointError, ConfigError, DataError
from cleanfit.training.checkpoints import CheckpointManager
from cleanfit.training.distributed import Distributed
from cleanfit.training.early_stopping import EarlyStopping
from cleanfit.training.precision import PRECISIONS


def check_batches(batches: Any, where: str) -> None:
    if not isinstance(batches, Batches):
        raise DataError(f"{where}: expected cf.Batches, got {type(batches).__name__}; wrap the data: "
                        "cf.Batches((X, y), batch_size=64) (shuffle=False for evaluation).")


def check_complete(batches: Batches, where: str) -> None:
    """Evaluation and prediction see every example: drop_last would silently leave the last ones out."""
    left_out = batches.num_examples % batches.global_batch_size if batches.drop_last else 0
    if left_out:
        raise DataError(f"{where}: Batches(drop_last=True) leave out the last {left_out} of {batches.num_examples} "
                        "examples, so the result would not cover the data; pass drop_last=False for evaluation.")


def check_monitor(monitor: str, metrics: Any, *, has_val: bool) -> None:
    """EarlyStopping's ``monitor`` must be a value the epoch rows will have: checked before training, not after
    the first epoch."""
    values = ["train_loss"] + (["val_loss"] + [f"val_{name}" for name in metrics] if has_val else [])
    if monitor in values:
        return
    if monitor.startswith("val_") and not has_val:
        raise ConfigError(f"EarlyStopping(monitor={monitor!r}) needs val batches: pass fit(train, val, ...).")
    raise ConfigError(f"EarlyStopping(monitor={monitor!r}) is not a value of the epoch rows; monitor one of "
                      f"{', '.join(values)} (metrics are 'val_' + their name in Trainer(metrics=...)).")


def check_sharding(batches: Batches, where: str, rank: int, world_size: int, group: bool) -> None:
    """Batches cut for other ranks than this process would train or evaluate on a share of the data."""
    if (batches.rank, batches.world_size) != (rank, world_size):
        this = f"rank {rank} of {world_size} in the process group" if group else "a single process (no process group)"
        raise DataError(
            f"{where}: Batches(rank={batches.rank}, world_size={batches.world_size}) yield only that rank's share "
            f"of the data, but this Trainer runs as {this}; leave rank and world_size unset (they are read from "
            "torch.distributed / torchrun) or launch that many ranks with torchrun."
        )


def check_fit(train: Any, val: Any, epochs: Any, early_stopping: EarlyStopping | None, metrics: Any) -> None:
    """``fit``'s arguments, before anything is set up."""
    check_batches(train, "train")
    if val is not None:
        check_batches(val, "val")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError(f"fit(epochs={epochs!r}) must be an int >= 1.")
    if early_stopping is not None:
        check_monitor(early_stopping.monitor, metrics, has_val=val is not None)


def check_fit_batches(train: Batches, val: Batches | None, dist: Distributed) -> None:
    """``fit``'s batches against the process group (once it is set up): sharding, a complete val pass, data."""
    for batches, where in ((train, "train"), (val, "val")):
        if batches is not None:
            check_sharding(batches, where, dist.rank, dist.world_size, dist.enabled)
    if val is not None:
        check_complete(val, "val")
    if len(train) == 0:
        raise DataError(f"fit() got train batches with no batches ({train!r}); pass more examples or drop_last=False.")


def check_eval_batches(batches: Any, where: str, dist: Distributed) -> None:
    """``evaluate``/``predict`` batches (already checked to be cf.Batches): cut for this process group, covering
    every example."""
    check_sharding(batches, where, dist.rank, dist.world_size, dist.enabled)
    check_complete(batches, where)


def check_combinations(metrics: Any, step: Any, checkpoint_every: Any, checkpoint_dir: Any) -> None:
    """Trainer arguments that only make sense together."""
    if metrics and step is not None:
        raise ConfigError("Trainer(metrics=...) needs loss= with (x, y) batches (metrics compare outputs and "
                          "targets); with step= compute them yourself after predict().")
    if checkpoint_every and checkpoint_dir is None:
        raise ConfigError(f"Trainer(checkpoint_every={checkpoint_every}) saves nowhere without checkpoint_dir; "
                          "pass checkpoint_dir='checkpoints' (or drop checkpoint_every).")
    if checkpoint_dir is not None and not is_path(checkpoint_dir):
        raise ConfigError(f"Trainer(checkpoint_dir={checkpoint_dir!r}) must be a folder path (str or Path) or None.")


def check_arguments(model: Any, optimizer: Any, loss: Any, step: Any, precision: Any, accumulate: Any,
                    clip_grad: Any, checkpoint_every: Any, keep_last: Any, early_stopping: Any, report: Any) -> None:
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"Trainer(model=...) must be a torch.nn.Module, got {type(model).__name__}.")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError(f"Trainer(optimizer=...) must be a torch.optim.Optimizer, got {type(optimizer).__name__}.")
    if (loss is None) == (step is None):
        raise ConfigError("Trainer needs exactly one of loss=fn(outputs, targets) (for (x, y) batches) or "
                          "step=fn(model, batch) -> loss.")
    if precision not in PRECISIONS:
        raise ConfigError(f"Trainer(precision={precision!r}) must be one of {', '.join(PRECISIONS)}.")
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ConfigError(f"Trainer(accumulate={accumulate!r}) must be an int >= 1 (batches per optimizer step).")
    if clip_grad is not None and not is_positive(clip_grad):
        raise ConfigError(f"Trainer(clip_grad={clip_grad!r}) must be a positive max norm (e.g. 1.0) or None.")
    if checkpoint_every is not None and (isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int)
                                         or checkpoint_every < 0):
        raise ConfigError(f"Trainer(checkpoint_every={checkpoint_every!r}) must be a number of optimizer steps "
                          "(0 or None: at each epoch end only).")
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise ConfigError(f"Trainer(keep_last={keep_last!r}) must be an int >= 1.")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise ConfigError("Trainer(early_stopping=...) must be cf.EarlyStopping(patience, monitor=...).")
    if not isinstance(report, bool) and not callable(report):
        raise ConfigError(f"Trainer(report={report!r}) must be True (the run report), False (none) or a callable "
                          "report writer (called with tracker, directory, history, config, metrics, findings).")
    model_params = {id(p) for p in model.parameters()}
    foreign = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in model_params]
    if foreign:
        shapes = ", ".join(str(tuple(p.shape)) for p in foreign[:3])
        raise ConfigError(f"the optimizer holds {len(foreign)} parameter(s) that are not in the model (shapes {shapes}); "
                          "build it from this model: torch.optim.AdamW(model.parameters(), ...).")


def open_checkpoints(directory: Path | None, keep_last: int, resume: bool | str | Path,
                     dist: Distributed) -> CheckpointManager | None:
    """The run's CheckpointManager (None without ``checkpoint_dir``), its directory checked before training
    starts: writable, and not holding another run's checkpoints unless this fit resumes (a later
    ``resume=True`` would take the highest step, whichever run wrote it). Rank 0 checks; every rank raises,
    so none waits for a peer that stopped."""
    if directory is None:
        if resume is True or (isinstance(resume, str) and resume == "best"):
            raise ConfigError(f"fit(resume={resume!r}) needs Trainer(checkpoint_dir=...) to find the checkpoints in "
                              "(or pass resume=<path to a .ckpt file>).")
        return None
    manager = CheckpointManager(directory, keep_last=keep_last, monitor="val_loss", mode="min")
    problem = None
    if dist.is_main:
        try:
            manager.check_writable()
            found = manager.list()
            if found and not resume:
                raise CheckpointError(
                    f"checkpoint_dir {directory} already holds {len(found)} checkpoint(s) (newest {found[0].name}); "
                    "a fresh fit there would mix two runs, and a later resume=True would pick the newest by step, "
                    "whichever run wrote it. Pass fit(..., resume=True) to continue that run, or choose an empty "
                    "checkpoint_dir (or delete its checkpoints) to start over."
                )
        except CheckpointError as exc:
            problem = str(exc)
    problem = dist.broadcast(problem)
    if problem is not None:
        raise CheckpointError(problem)
    return manager
