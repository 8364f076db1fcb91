"""The two steps of a fit's start that make a resume the same run: restoring a checkpointed
:class:`~cleanfit.training.state.TrainState`, and seeding (or restoring) the random number generators
last, after everything is built, so a resumed run draws exactly what the uninterrupted run drew."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cleanfit.errors import ConfigError
from cleanfit.seeding import seed_everything, set_rng_state
from cleanfit.training.run_io import logger
from cleanfit.training.state import TrainState


def restore(state: TrainState, saved: dict[str, Any], source: Path | None, *, epochs: int, total_steps: int,
            dist: Any) -> None:
    """Load ``saved`` into ``state`` (checked to belong to this run), say where the run resumes, and refuse
    a checkpoint that is already past the epochs asked for."""
    state.load_state_dict(saved, rank=dist.rank, source=source)
    if dist.is_main:
        logger.info(f"resumed from step {state.step} of {total_steps} (epoch {min(state.epoch + 1, epochs)} of {epochs})")
    if state.epoch > epochs:
        raise ConfigError(f"fit(epochs={epochs}) but {source} is already at epoch {state.epoch}; "
                          f"resume with epochs >= {state.epoch} (the run's own setting), or start a new run.")


def seed_run(state: TrainState, *, resumed: bool, seed: int, rank: int) -> None:
    """A fresh run seeds every generator with ``seed + rank``; a resumed one restores this rank's saved
    states (a rank the checkpoint has no state for gets a seed derived from the step)."""
    if not resumed:
        seed_everything((seed + rank) % 2**32)
    elif rank < len(state.rng):
        set_rng_state(state.rng[rank])
    else:
        seed_everything((seed + rank + 1_000_003 * state.step) % 2**32)
