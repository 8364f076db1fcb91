"""DDP under torchrun: the process group from the environment, and the few collectives training needs.

Under ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` set and
``WORLD_SIZE > 1``) the Trainer calls :func:`setup` once: it starts the process group (NCCL on CUDA,
gloo on CPU) with a timeout, so that a rank whose peer died exits with an error instead of hanging,
and registers its shutdown at interpreter exit (the group stays up after ``fit`` for ``evaluate`` and
``predict``). Outside torchrun everything here is a no-op on one process.

Two waits, two timeouts. ``CLEANFIT_DIST_TIMEOUT`` seconds (default 60) bounds the join and every
collective: long enough for rank 0 to write a checkpoint while the others wait, short enough that a
stopped peer is noticed within a minute. The setup before training (rank 0 creates the MLflow store,
claims the run folder) can take longer on a slow disk, so ``cleanfit train`` joins first
(:func:`before_training`), and the ranks then meet at :func:`ready` through a key of the rendezvous
store, which waits up to ``CLEANFIT_SETUP_TIMEOUT`` seconds (default 600) while the others' heartbeats
run; a rank whose setup fails puts its one-line error there, and every other rank stops with it.

A collective that fails because a peer died or stopped becomes :func:`lost_peer`'s one-line
:class:`~cleanfit.errors.TrainingError` naming this rank and the lost one, read from the ranks'
heartbeats (training/heartbeat.py: gloo's own error names an address, not a rank).

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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ContextManager

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from cleanfit._util.ranks import env_world, world
from cleanfit.errors import CleanfitError, ConfigError, TrainingError
from cleanfit.training import setup_wait
from cleanfit.training.heartbeat import Beat, Heartbeat, describe

__all__ = ["Distributed", "setup", "join", "ready", "before_training", "note_step", "lost_peer", "launched_by_torchrun"]

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_SETUP_TIMEOUT_S = 600.0
_owned_group = False  # True when cleanfit started the process group (and so shuts it down at exit)
_heartbeat: Heartbeat | None = None  # this rank's, while cleanfit's process group is up
_phases = 0  # ready() barriers this process has passed (every rank passes the same sequence)
_published = 0  # the barrier this process has put its failure on
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
    """Join (or start) the process group when launched by torchrun, meet the other ranks at :func:`ready`,
    and return the group and the device to use.

    ``device`` is what the user asked for; under torchrun with CUDA each rank takes
    ``cuda:LOCAL_RANK``.
    """
    if not (dist.is_available() and dist.is_initialized()) and not launched_by_torchrun():
        return Distributed.single(), device
    device = join(device)
    ready()
    return _current(), device


def join(device: str | torch.device = "auto") -> str | torch.device:
    """Join the process group now, under torchrun (a no-op when joined already, or on one process).

    Every rank starts at the same time, so joining before any slow setup keeps the join quick. Returns
    the device this rank uses.
    """
    if dist.is_available() and dist.is_initialized():
        return _rank_device(device)
    if not launched_by_torchrun():
        return device
    if not dist.is_available():
        raise ConfigError("torchrun started several ranks but this torch build has no torch.distributed.")
    device = _rank_device(device)
    use_cuda = torch.device(device).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(torch.device(device))
    _join("nccl" if use_cuda else "gloo")
    global _owned_group, _heartbeat
    if not _owned_group:
        _owned_group = True
        atexit.register(shutdown)
    rank, world_size = world()
    try:
        _heartbeat = Heartbeat(rank, world_size, _heartbeat_s(), store_timeout_s=min(_timeout_s(), 30.0)).start()
    except dist.DistError:  # no store to beat into: training still runs, lost ranks are named as before
        _heartbeat = None
    return device


def _join(backend: str) -> None:
    """``init_process_group``; a rank that does not arrive within the timeout is one TrainingError line."""
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=_timeout_s()))
    except dist.DistError as exc:
        rank, world_size = env_world()
        raise TrainingError(
            f"rank {rank} of {world_size}: not every rank joined the process group within CLEANFIT_DIST_TIMEOUT = "
            f"{_timeout_s():g} s ({_first_line(exc)}); one died, was stopped, or was started late: look at the "
            "other ranks' output, or raise CLEANFIT_DIST_TIMEOUT"
        ) from exc


@contextlib.contextmanager
def before_training(device: str | torch.device = "auto") -> Iterator[None]:
    """Under torchrun: join now; an error this rank raises before it reaches :func:`ready` goes to the others.

    So a setup that fails on rank 0 (a folder it cannot write, a store it cannot open) stops every rank
    at once with rank 0's one line, instead of leaving them waiting. A no-op on one process.

    >>> with before_training():
    ...     pass
    """
    join(device)
    phase = _phases
    try:
        yield
    except BaseException as exc:
        if _heartbeat is not None and _phases == phase:
            _publish_failure(exc)
        raise


def ready() -> None:
    """Wait until every rank is set up and about to train, up to ``CLEANFIT_SETUP_TIMEOUT`` seconds.

    A rank whose setup failed put its error on the store (:func:`before_training`): every rank raises it
    here. While waiting, a rank whose heartbeat stops for ``CLEANFIT_DIST_TIMEOUT`` ends the wait.
    See :func:`cleanfit.training.setup_wait.meet`.
    """
    global _phases
    if _heartbeat is None:
        return
    outcome = setup_wait.meet(_heartbeat, _phases + 1, limit_s=_setup_timeout_s(), stale_s=_timeout_s())
    _phases += 1
    if outcome != "ok":
        raise TrainingError(f"rank {_heartbeat.rank} of {_heartbeat.world_size}: {outcome}; the run did not start")


def _publish_failure(exc: BaseException) -> None:
    """Put this rank's error where the others wait at :func:`ready` (once per barrier)."""
    global _published
    if _heartbeat is None or _published == _phases + 1:
        return
    _published = _phases + 1
    message = f"rank {_heartbeat.rank} could not set up the run: {_error_line(exc)}"
    setup_wait.publish(_heartbeat, _phases + 1, message, wait_s=_timeout_s())


def note_step(step: int) -> None:
    """The Trainer's optimizer step, carried by this rank's next heartbeat (an attribute write: no I/O)."""
    if _heartbeat is not None:
        _heartbeat.step = step


def shutdown() -> None:
    """Destroy the process group cleanly, if cleanfit started it."""
    global _owned_group, _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()  # "exited": a rank that ends while others wait is named, not waited for
        _heartbeat = None
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
    """The one-line error for a collective that failed because another rank died or stopped, else None.

    The lost rank is named from the heartbeats (:meth:`Heartbeat.blame`: a few heartbeat intervals of
    watching), with its pid, host and last step.
    """
    if world_size < 2 or not isinstance(exc, RuntimeError) or isinstance(exc, CleanfitError):
        return None
    text = str(exc)
    if not (isinstance(exc, dist.DistError) or any(w in text for w in ("Connection closed", "Connection reset",
                                                                        "imed out", "Broken pipe"))):
        return None
    return TrainingError(
        f"rank {rank} of {world_size}: lost contact with {_lost(rank, world_size)} ({_first_line(exc)}); the run "
        f"stops here (a lost rank is noticed within CLEANFIT_DIST_TIMEOUT = {_timeout_s():g} s): resume it with "
        "resume=True once every rank can run"
    )


def _lost(rank: int, world_size: int) -> str:
    """Who is gone, from the heartbeats; without them, what can be said honestly."""
    gone = _heartbeat.blame() if _heartbeat is not None else None
    if gone:
        return " and ".join(_described(beat, r, what) for beat, r, what in gone)
    if world_size == 2:
        still = " (its heartbeat still runs: it is busy or hangs, not dead)" if gone is not None else ""
        return f"rank {1 - rank}{still}"
    if gone is None and rank != 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return "rank 0 (the store it holds no longer answers)"
    if gone is None:
        return "another rank (gloo does not say which, and the ranks' heartbeats could not be read)"
    return "another rank (every rank's heartbeat still runs: one is busy or hangs, none died)"


def _described(beat: Beat | None, rank: int, what: str) -> str:
    at = max(beat.step, _heartbeat.step) if beat is not None and _heartbeat is not None else None
    return describe(beat, rank, what, at=at)  # the ranks train in lockstep: this rank's step is theirs


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[0].split())[:160] if text else type(exc).__name__


def _error_line(exc: BaseException) -> str:
    """A rank's failure in one line, as its own output says it."""
    if isinstance(exc, KeyboardInterrupt):
        return "it was interrupted (Ctrl-C or SIGTERM)"
    if isinstance(exc, SystemExit):
        return f"it exited (code {exc.code})"
    text = " ".join(str(exc).split())[:400]
    return text if isinstance(exc, CleanfitError) else f"{type(exc).__name__}: {text}"


def _timeout_s() -> float:
    return _seconds("CLEANFIT_DIST_TIMEOUT", DEFAULT_TIMEOUT_S)


def _setup_timeout_s() -> float:
    return _seconds("CLEANFIT_SETUP_TIMEOUT", DEFAULT_SETUP_TIMEOUT_S)


def _heartbeat_s() -> float:
    """A beat every 1/20 of the collective timeout, between 0.2 and 2 s (``CLEANFIT_HEARTBEAT`` overrides)."""
    return _seconds("CLEANFIT_HEARTBEAT", min(2.0, max(0.2, _timeout_s() / 20)))


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a positive number of seconds (default {default:g})")
    return value
