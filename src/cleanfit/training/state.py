"""TrainState: everything a resume needs, in one object; a checkpoint is exactly its ``state_dict()``.

If it is not in here, it is not resumable: model (plain keys, also under compile), its EMA, optimizer, LR scheduler, fp16 scaler, the epoch and
optimizer step, the train Batches position, every rank's RNG states, early stopping, the best metric,
the History, this epoch's running sums, the tracking run id, and an identity (parameter shapes, number
of train examples, seed, global batch size, accumulation) that a resume must match. Checkpoints are
taken between optimizer steps only, so the format's ``micro_step`` (batches into an accumulation
window) is always 0.

``state_dict()`` holds only tensors, ints, floats, strings, None, lists and dicts, so
``torch.load(weights_only=True)`` reads it back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from cleanfit._util.mappings import flatten
from cleanfit.errors import CheckpointError, CleanfitError
from cleanfit.training.compiling import plain_keys
from cleanfit.training.early_stopping import EarlyStopping
from cleanfit.training.history import History
from cleanfit.training.precision import Precision
from cleanfit.training.state_check import check_structure

__all__ = ["TrainState", "check_compatible", "identity_of"]

FORMAT = "cleanfit.train-state/1"


def identity_of(model: torch.nn.Module, train: Any, *, seed: int, accumulate: int,
                schedule_steps: int | None = None, ema: float | None = None) -> dict[str, Any]:
    """What must not change between a run and its resume. ``schedule_steps``: the total optimizer steps an
    LR schedule was planned for (cf.warmup_cosine() & co.); a resume with other epochs would keep the old
    plan (a learning rate of 0 after it ends), so it is refused."""
    identity = {
        "parameters": {name: list(p.shape) for name, p in model.state_dict().items()},
        "num_train_examples": int(train.num_examples),
        "seed": int(seed),
        "batches_seed": int(train.seed),
        "global_batch_size": int(train.global_batch_size),
        "accumulate": int(accumulate),
    }
    if schedule_steps is not None:
        identity["schedule_total_steps"] = int(schedule_steps)
    if ema is not None:
        identity["ema_decay"] = float(ema)
    return identity


def _zero_totals(device: torch.device) -> dict[str, Any]:
    return {
        "loss_sum": 0.0,  # sum of loss x examples (added up in float64 as the steps are logged)
        "examples": 0,  # rows, or the units of step -> (loss, count)
        "grad_norm_sum": torch.zeros((), dtype=torch.float32, device=device),
        "grad_norms": 0,  # optimizer steps whose pre-clip norm is in grad_norm_sum
        "skipped_steps": 0,  # fp16 steps skipped for inf/NaN gradients
    }


@dataclass
class TrainState:
    """The one training-state object of a run (see the module docstring)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any  # torch.optim.lr_scheduler.LRScheduler, or None for the optimizer's own learning rate
    precision: Precision
    train: Any  # cleanfit.data.batches.Batches
    identity: dict[str, Any]
    device: torch.device
    early_stopping: EarlyStopping | None = None
    ema: Any = None  # cleanfit.training.averaging.Ema, or None
    history: History = field(default_factory=History)
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken (a step fp16 skipped counts: it used its batches)
    best_metric: float | None = None
    run_id: str | None = None
    rng: list[dict[str, Any]] = field(default_factory=list)  # per rank, captured when saving
    totals: dict[str, Any] = field(default_factory=dict)  # this epoch's running sums (this rank)

    def __post_init__(self) -> None:
        if not self.totals:
            self.totals = _zero_totals(self.device)

    def reset_totals(self) -> None:
        self.totals = _zero_totals(self.device)

    def summed_totals(self, dist: Any) -> dict[str, Any]:
        """This epoch's running sums over all ranks (``dist``: training.distributed.Distributed), in the shape
        of ``totals``."""
        t = self.totals
        numbers = [t["loss_sum"], t["examples"], float(t["grad_norm_sum"]), t["grad_norms"], t["skipped_steps"]]
        if dist.enabled:
            numbers = dist.all_reduce_sum(torch.tensor(numbers, dtype=torch.float64, device=self.device)).tolist()
        loss_sum, examples, norm_sum, norms, skipped = numbers
        examples = int(examples) if float(examples).is_integer() else examples  # rows; units may be fractional
        return {"loss_sum": loss_sum, "examples": examples, "grad_norm_sum": torch.tensor(norm_sum, dtype=torch.float32),
                "grad_norms": int(norms), "skipped_steps": int(skipped)}

    def state_dict(self, *, totals: dict[str, Any] | None = None) -> dict[str, Any]:
        """The checkpoint: plain values and tensors only. ``totals`` replaces this rank's running
        sums (under DDP the Trainer passes the sums over all ranks)."""
        totals = self.totals if totals is None else totals
        return {
            "format": FORMAT,
            "identity": self.identity,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {} if self.scheduler is None else self.scheduler.state_dict(),
            "scaler": self.precision.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "micro_step": 0,  # checkpoints are taken between optimizer steps only (kept in the format)
            "train_batches": dict(self.train.state_dict()),
            "rng": list(self.rng),
            "early_stopping": None if self.early_stopping is None else self.early_stopping.state_dict(),
            "best_metric": self.best_metric,
            "history": self.history.to_dict(),
            "run_id": self.run_id,
            "totals": {k: (v.detach().cpu().clone() if isinstance(v, torch.Tensor) else v) for k, v in totals.items()},
            **({} if self.ema is None else {"ema": self.ema.state_dict()}),  # Trainer(ema=...) only
        }

    def check(self, state: Any, source: Any = None) -> None:
        """CheckpointError unless ``state`` has the structure this state saves (see ``state_check``).

        A state whose identity names another run is left to :meth:`load_state_dict`, which refuses it
        naming what differs (a checkpoint of another run is not a broken one to skip).
        """
        identity = state.get("identity") if isinstance(state, dict) else None
        if isinstance(identity, dict):
            try:
                check_compatible(identity, self.identity, path=source)
            except CheckpointError:
                return
        check_structure(state, self.state_dict(), source)

    def load_state_dict(self, state: dict[str, Any], *, rank: int = 0, source: Any = None) -> None:
        """Restore every field from a checkpoint, after checking it belongs to this run.

        RNG states are not restored here: the Trainer restores them last, after building everything,
        so that nothing built afterwards consumes random numbers the uninterrupted run did not.
        """
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise CheckpointError(
                f"{source or 'the checkpoint'} is not a cleanfit training state (format "
                f"{state.get('format') if isinstance(state, dict) else type(state).__name__!r}, expected {FORMAT!r}); "
                "resume from a checkpoint written by cleanfit.Trainer."
            )
        check_compatible(state["identity"], self.identity, path=source)
        if int(state.get("micro_step", 0)) != 0:
            raise CheckpointError(f"{source or 'the checkpoint'} was saved inside an accumulation window; "
                                  "cleanfit saves only between optimizer steps, so it was not written by this version.")
        try:
            self._restore(state, rank=rank, source=source)
        except CleanfitError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            raise CheckpointError(f"{source or 'the checkpoint'} cannot be restored into this run "
                                  f"({type(exc).__name__}: {exc}); resume from another checkpoint") from None

    def _restore(self, state: dict[str, Any], *, rank: int, source: Any) -> None:
        self.model.load_state_dict(plain_keys(state["model"]))
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])  # identity_of names ema_decay: a checkpoint without it was refused
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.precision.load_state_dict(state["scaler"])
        self.train.load_state_dict(state["train_batches"])
        if self.early_stopping is not None:
            if state["early_stopping"] is None:
                raise CheckpointError(f"{source or 'the checkpoint'} was written without early stopping; "
                                      "resume with the same early_stopping setting.")
            self.early_stopping.load_state_dict(state["early_stopping"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_metric = state["best_metric"]
        self.history = History.from_dict(state["history"])
        self.run_id = state["run_id"]
        self.rng = list(state["rng"])
        self.totals = _zero_totals(self.device)
        if rank == 0:  # the saved sums cover all ranks; the other ranks start this epoch's sums at zero
            for key, value in state["totals"].items():
                self.totals[key] = value.to(self.device) if isinstance(value, torch.Tensor) else value


def check_compatible(
    saved: Mapping[str, Any], current: Mapping[str, Any], *, path: str | os.PathLike[str] | None = None
) -> None:
    """Refuse to resume when the checkpoint was written for a different run.

    ``saved`` and ``current`` are fingerprints (e.g. seed, num_examples, batch sizes and the model's
    parameter shapes); nested mappings are compared key by key and every difference is named.

    >>> check_compatible({"seed": 0, "shapes": {"w": [2, 3]}}, {"seed": 0, "shapes": {"w": [2, 3]}})
    >>> check_compatible({"seed": 0, "shapes": {"w": [2, 3]}}, {"seed": 1, "shapes": {"w": [4, 3]}})
    Traceback (most recent call last):
    ...
    cleanfit.errors.CheckpointError: cannot resume from the checkpoint: it was written for a different run (seed: checkpoint 0, now 1; shapes.w: checkpoint [2, 3], now [4, 3]); ...
    """
    left, right = flatten(saved), flatten(current)
    differences = [
        f"{key}: checkpoint {_show(left.get(key))}, now {_show(right.get(key))}"
        for key in sorted(set(left) | set(right))
        if _normalise(left.get(key)) != _normalise(right.get(key))
    ]
    if differences:
        where = f"{path}" if path is not None else "the checkpoint"
        raise CheckpointError(
            f"cannot resume from {where}: it was written for a different run ({'; '.join(differences)}); "
            "resume with the same model, data and settings, or start fresh in another checkpoint_dir"
        )


def _normalise(value: Any) -> Any:
    if isinstance(value, torch.Size | tuple | list):
        return [_normalise(v) for v in value]
    return value


def _show(value: Any) -> str:
    return "missing" if value is None else repr(_normalise(value))
