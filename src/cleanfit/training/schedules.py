"""Learning-rate schedules, stepped once per optimizer step.

``warmup_cosine()``, ``warmup_linear()`` and ``constant()`` return a :class:`Schedule`: a factory the
Trainer calls with ``(optimizer, total_steps)`` once it knows the total (epochs x optimizer steps
per epoch), giving a :class:`torch.optim.lr_scheduler.LambdaLR`. The multiplier at step ``s`` is a
plain function of ``s``, like nanoGPT's ``get_lr(it)``: a linear warmup, then a decay to
``min_lr_ratio`` times the optimizer's learning rate.

>>> s = warmup_cosine(warmup=2, min_lr_ratio=0.1)
>>> [round(s.factor(step, total_steps=10), 3) for step in range(10)]
[0.333, 0.667, 1.0, 0.966, 0.868, 0.722, 0.55, 0.378, 0.232, 0.134]
>>> [round(warmup_linear(warmup=0.0).factor(step, total_steps=4), 2) for step in range(4)]
[1.0, 0.75, 0.5, 0.25]
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Callable, Union

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from cleanfit.errors import ConfigError

__all__ = ["Schedule", "warmup_cosine", "warmup_linear", "constant", "make_scheduler"]


class _Factor:
    """The picklable multiplier a LambdaLR calls (its state is three plain numbers)."""

    def __init__(self, kind: str, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> None:
        self.kind = kind
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_lr_ratio = min_lr_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.kind == "constant":
            return 1.0
        decay_steps = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / decay_steps)
        if self.kind == "cosine":
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            shape = 1.0 - progress
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * shape


class Schedule:
    """A learning-rate schedule waiting for the total number of optimizer steps.

    ``warmup`` is a fraction of the total steps (a float in [0, 1]) or a step count (an int).
    """

    def __init__(self, kind: str, *, warmup: float | int = 0, min_lr_ratio: float = 0.0) -> None:
        if isinstance(warmup, bool) or not isinstance(warmup, (int, float)):
            raise ConfigError(f"{kind} schedule: warmup={warmup!r} must be a fraction (0.05) or a step count (500).")
        if isinstance(warmup, float) and not 0.0 <= warmup <= 1.0:
            raise ConfigError(
                f"{kind} schedule: warmup={warmup} is a fraction of the total steps and must lie in [0, 1]; "
                "pass an int for a number of steps."
            )
        if isinstance(warmup, int) and warmup < 0:
            raise ConfigError(f"{kind} schedule: warmup={warmup} steps must be >= 0.")
        if isinstance(min_lr_ratio, bool) or not isinstance(min_lr_ratio, numbers.Real) \
                or not 0.0 <= min_lr_ratio <= 1.0:
            raise ConfigError(f"{kind} schedule: min_lr_ratio={min_lr_ratio!r} must be a number in [0, 1] (the final "
                              "learning rate over the optimizer's).")
        self.kind = kind
        self.warmup = warmup
        self.min_lr_ratio = float(min_lr_ratio)

    def warmup_steps(self, total_steps: int) -> int:
        """The warmup length in optimizer steps for a run of ``total_steps``."""
        if isinstance(self.warmup, float):
            return int(round(self.warmup * total_steps))
        return self.warmup

    def factor(self, step: int, total_steps: int) -> float:
        """The learning-rate multiplier at optimizer step ``step`` (0-based)."""
        return _Factor(self.kind, self.warmup_steps(total_steps), total_steps, self.min_lr_ratio)(step)

    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> LambdaLR:
        warmup = self.warmup_steps(total_steps)
        if isinstance(self.warmup, int) and 0 < total_steps <= warmup:
            raise ConfigError(
                f"{self.kind} schedule: warmup={warmup} steps, but the run has only {total_steps} optimizer steps, so "
                "the learning rate would never reach its set value; pass fewer warmup steps or a fraction of the "
                "run (warmup=0.05)."
            )
        return LambdaLR(optimizer, _Factor(self.kind, warmup, total_steps, self.min_lr_ratio))

    def settings(self) -> dict[str, Any]:
        """What to log: the kind and its arguments."""
        return {"schedule": self.kind, "warmup": self.warmup, "min_lr_ratio": self.min_lr_ratio}

    def __repr__(self) -> str:
        return f"Schedule({self.kind!r}, warmup={self.warmup!r}, min_lr_ratio={self.min_lr_ratio!r})"


def warmup_cosine(warmup: float | int = 0.05, min_lr_ratio: float = 0.0) -> Schedule:
    """Linear warmup, then a cosine decay to ``min_lr_ratio`` x the optimizer's learning rate."""
    return Schedule("cosine", warmup=warmup, min_lr_ratio=min_lr_ratio)


def warmup_linear(warmup: float | int = 0.05, min_lr_ratio: float = 0.0) -> Schedule:
    """Linear warmup, then a linear decay to ``min_lr_ratio`` x the optimizer's learning rate."""
    return Schedule("linear", warmup=warmup, min_lr_ratio=min_lr_ratio)


def constant(warmup: float | int = 0) -> Schedule:
    """The optimizer's learning rate throughout (after an optional linear warmup)."""
    return Schedule("constant", warmup=warmup)


ScheduleLike = Union[Schedule, str, Callable[[torch.optim.Optimizer], LRScheduler], LRScheduler, None]
_NAMED: dict[str, Callable[[], Schedule]] = {
    "warmup_cosine": warmup_cosine,
    "warmup_linear": warmup_linear,
    "constant": constant,
}


def make_scheduler(schedule: ScheduleLike, optimizer: torch.optim.Optimizer, total_steps: int) -> LRScheduler | None:
    """Build the LR scheduler for ``optimizer`` from whatever ``Trainer(schedule=...)`` was given.

    ``None`` means the optimizer's learning rate throughout (no scheduler); a name (``"warmup_cosine"``) means that
    schedule with its defaults; a torch LR-scheduler factory ``lambda opt: StepLR(opt, 10)`` (or
    ``lambda opt, total_steps: OneCycleLR(opt, 0.1, total_steps=total_steps)``, given the run's optimizer steps)
    or a scheduler already built over this optimizer are used as they are.
    """
    if schedule is None:
        return None
    if isinstance(schedule, str):
        if schedule not in _NAMED:
            raise ConfigError(f"Trainer(schedule={schedule!r}) is not a schedule; use one of {', '.join(_NAMED)}.")
        schedule = _NAMED[schedule]()
    if isinstance(schedule, Schedule):
        return schedule(optimizer, total_steps)
    if isinstance(schedule, LRScheduler):
        _refuse_plateau(schedule)
        if schedule.optimizer is not optimizer:
            raise ConfigError("Trainer(schedule=...) is a scheduler built over another optimizer than Trainer's.")
        return schedule
    if callable(schedule):
        scheduler = schedule(optimizer, total_steps) if _takes_total(schedule) else schedule(optimizer)
        _refuse_plateau(scheduler)
        if not isinstance(scheduler, LRScheduler):
            raise ConfigError(
                "Trainer(schedule=...) must be cf.warmup_cosine(), cf.warmup_linear(), cf.constant() or a factory "
                f"`lambda opt: torch.optim.lr_scheduler.X(opt, ...)`; the factory returned {type(scheduler).__name__}."
            )
        return scheduler
    raise ConfigError(f"Trainer(schedule={schedule!r}) is not a schedule.")


def _refuse_plateau(scheduler: Any) -> None:
    if isinstance(scheduler, ReduceLROnPlateau):
        raise ConfigError(
            "Trainer(schedule=...) is ReduceLROnPlateau, which steps on a metric, but schedules are stepped once per "
            "optimizer step; use cf.warmup_cosine() (or cf.EarlyStopping(patience) for a plateau)."
        )


def _takes_total(factory: Callable[..., Any]) -> bool:
    """True for a factory ``lambda opt, total_steps: ...`` (its second parameter named ``total_steps``)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 and positional[1].name == "total_steps"


def planned(schedule: ScheduleLike) -> bool:
    """True when the schedule is laid out over the run's total steps (cleanfit's own schedules)."""
    return isinstance(schedule, (Schedule, str))


def describe_schedule(schedule: ScheduleLike) -> dict[str, Any]:
    """Plain values describing a schedule, for logging."""
    if schedule is None:
        return {"schedule": "none"}
    if isinstance(schedule, Schedule):
        return schedule.settings()
    if isinstance(schedule, str):
        return {"schedule": schedule}
    return {"schedule": getattr(schedule, "__name__", type(schedule).__name__)}
