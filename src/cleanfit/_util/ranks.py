"""Which rank this process is, one rule for the data, the pipeline and the Trainer.

An initialised ``torch.distributed`` process group decides; else torchrun's ``RANK`` and
``WORLD_SIZE`` environment variables; else rank 0 of 1.
"""

from __future__ import annotations

import os

import torch.distributed as dist


def env_world() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment variables, else ``(0, 1)``."""
    try:
        return int(os.environ.get("RANK", "0") or 0), int(os.environ.get("WORLD_SIZE", "1") or 1)
    except ValueError:
        return 0, 1


def world() -> tuple[int, int]:
    """``(rank, world_size)``: the process group's when one is initialised, else :func:`env_world`."""
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank()), int(dist.get_world_size())
    return env_world()


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return world()[0]
