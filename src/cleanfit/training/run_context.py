"""RunContext: the bookkeeping of one ``Trainer.fit`` that is not training state.

The :class:`~cleanfit.training.state.TrainState` is what a checkpoint holds; this is the rest, which a
resume rebuilds rather than restores: the tracker and who owns its run, the checkpoint manager, the
report writer, the run's parameters, the train losses not yet logged, the learning rate of the last
step, the progress bar. Built once at the start of ``fit``; nothing else of a fit lives on the Trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from cleanfit.data.batches import Batches
from cleanfit.training.checkpoints import CheckpointManager

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """One fit's bookkeeping (see the module docstring)."""

    tracker: Any  # a cleanfit.tracking Tracker (a NullTracker on ranks other than 0)
    owns_run: bool  # the Trainer finishes the run at the end of fit (run_io.owns_run); else it only flushes it
    manager: CheckpointManager | None  # None without checkpoint_dir
    val: Batches | None
    epochs: int
    windows_per_epoch: int  # optimizer steps per epoch
    non_blocking: bool  # copy batches to the device without waiting (CUDA)
    report: Callable[..., Any] | None = None  # the report writer called at the end of fit, or None
    params: dict[str, Any] = field(default_factory=dict)  # what this run was (logged; the report's config)
    pending: list[tuple[torch.Tensor, float]] = field(default_factory=list)  # (window loss, scale) since the last log
    last_lr: float = math.nan  # the learning rate of the last optimizer step
    move_batches: bool = True  # until the first batch shows it is already where the model is
    bar: Any = None  # the tqdm progress bar over optimizer steps
