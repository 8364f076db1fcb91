"""DDP under torchrun: the process group from the environment, and the few collectives training needs.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` set and
``WORLD_SIZE > 1``) the Trainer calls :func:`setup` once: it starts the process group (NCCL on CUDA,
gloo on CPU) with a timeout, so that a rank whose peer died exits with an error instead of hanging,
and registers its shutdown at interpreter exit (the group stays up after ``fit`` for ``evaluate`` and
``predict``). Outside torchrun everything here is a no-op on one process.

The timeout is ``CLEANFIT_DIST_TIMEOUT`` seconds (default 60): long enough for rank 0 to write a
checkpoint while the others wait, short enough that a stopped peer is noticed within a minute. A
collective that fails because a peer died or stopped becomes :func:`lost_peer`'s one-line
:class:`~cleanfit.errors.TrainingError` naming this rank and the lost one.

>>> d = Distributed.single()
>>> d.rank, d.world_size, d.is_main, d.enabled
(0, 1, True, False)
>>> d.all_reduce_sum(torch.tensor([1.0, 2.0])).tolist()
[1.0, 2.0]
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from cleanfit._util.ranks import env_world, world
from cleanfit.errors import ConfigError, TrainingError

__all__ = ["Distributed", "setup", "launched_by_torchrun"]

DEFAULT_TIMEOUT_S = 60.0
_owned_group = False  # True when cleanfit started the process group (and so shuts it down at exit)
_NO_CONTEXT = contextlib.nullcontext()  # reusable: entering it does nothing


def launched_by_torchrun() -> bool:
    """True when the environment describes more than one rank (torchrun's variables)."""
    return "RANK" in os.environ and env_world()[1] > 1


@dataclass(frozen=True)
class Distributed:
    """Where this process stands in the run: its rank, the number of ranks, and the collectives."""

    rank: int
    world_size: int
    local_rank: int
    enabled: bool

    @classmethod
    def single(cls) -> Distributed:
        return cls(rank=0, world_size=1, local_rank=0, enabled=False)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs, tracks and reports."""
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks, in place (returned for convenience)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_gather(self, obj: Any) -> list[Any]:
        """One picklable object from every rank, in rank order."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model wrapped in DistributedDataParallel (the model itself on one process)."""
        if not self.enabled:
            return model
        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def sync_gradients(self, net: torch.nn.Module, sync: bool) -> ContextManager[Any]:
        """DDP's ``no_sync()`` when ``sync`` is False: accumulate locally, all-reduce on the window's last micro-batch."""
        if sync or not self.enabled:
            return _NO_CONTEXT
        return net.no_sync()


def setup(device: str | torch.device) -> tuple[Distributed, str | torch.device]:
    """Join (or start) the process group when launched by torchrun; return it and the device to use.

    ``device`` is what the user asked for; under torchrun with CUDA each rank takes
    ``cuda:LOCAL_RANK``.
    """
    if dist.is_available() and dist.is_initialized():
        return _current(), _rank_device(device)
    if not launched_by_torchrun():
        return Distributed.single(), device
    if not dist.is_available():
        raise ConfigError("torchrun started several ranks but this torch build has no torch.distributed.")
    device = _rank_device(device)
    use_cuda = torch.device(device).type == "cuda"
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(torch.device(device))
    _join(backend)
    global _owned_group
    if not _owned_group:
        _owned_group = True
        atexit.register(shutdown)
    return _current(), device


def _join(backend: str) -> None:
    """``init_process_group``; a rank that does not arrive within the timeout is one TrainingError line."""
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=_timeout_s()))
    except dist.DistError as exc:
        rank, world_size = env_world()
        first = " ".join(str(exc).strip().splitlines()[0].split())[:160] if str(exc).strip() else type(exc).__name__
        raise TrainingError(
            f"rank {rank} of {world_size}: not every rank joined the process group within CLEANFIT_DIST_TIMEOUT = "
            f"{_timeout_s():g} s ({first}); one died, was stopped, or was still busy before training (rank 0 "
            "opens the tracking store first): look at the other ranks' output, or raise CLEANFIT_DIST_TIMEOUT"
        ) from exc


def shutdown() -> None:
    """Destroy the process group cleanly, if cleanfit started it."""
    global _owned_group
    if _owned_group and dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
    _owned_group = False


def _current() -> Distributed:
    rank, world_size = world()  # the initialised process group's
    return Distributed(
        rank=rank, world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", rank)), enabled=world_size > 1
    )


def _rank_device(device: str | torch.device) -> str | torch.device:
    """Under several ranks, "auto"/"cuda" become this rank's own GPU."""
    if not torch.cuda.is_available():
        return "cpu" if device == "auto" else device
    if device in ("auto", "cuda") or (isinstance(device, torch.device) and device.type == "cuda" and device.index is None):
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def lost_peer(exc: BaseException, rank: int, world_size: int) -> TrainingError | None:
    """The one-line error for a collective that failed because another rank died or stopped, else None."""
    if world_size < 2 or not isinstance(exc, RuntimeError):
        return None
    text = str(exc)
    if not (isinstance(exc, dist.DistError) or any(w in text for w in ("Connection closed", "Connection reset",
                                                                        "imed out", "Broken pipe"))):
        return None
    # with 2 ranks the lost one is the other; with more, gloo's error names an address, not a rank
    other = f"rank {1 - rank}" if world_size == 2 else "another rank (gloo does not say which)"
    first = " ".join(text.strip().splitlines()[0].split())[:160] if text.strip() else type(exc).__name__
    return TrainingError(
        f"rank {rank} of {world_size}: lost contact with {other} ({first}); it died, was stopped or hangs "
        f"(noticed within CLEANFIT_DIST_TIMEOUT = {_timeout_s():g} s); the run stops here: resume it with "
        "resume=True once every rank can run"
    )


def _timeout_s() -> float:
    raw = os.environ.get("CLEANFIT_DIST_TIMEOUT", "")
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise ConfigError(f"CLEANFIT_DIST_TIMEOUT={raw!r} must be a number of seconds") from None
