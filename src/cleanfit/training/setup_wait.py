"""The ranks meet before training, however long rank 0's setup takes; a setup that fails stops them all.

Under torchrun the process group is joined first (quick: every rank starts at once), then rank 0 alone
claims the run folder and opens the MLflow store, which can take minutes on a slow shared disk or a cold
store migration. The collective timeout (``CLEANFIT_DIST_TIMEOUT``) stays short for finding a lost rank
during training; this wait has its own (``CLEANFIT_SETUP_TIMEOUT``), through keys of the rendezvous store
under ``cleanfit/<attempt>/setup/<n>``:

- ``<rank>`` = ``ok`` when that rank is ready; the last to arrive (``count``) sets ``all`` = ``ok``;
- a rank whose setup raised sets ``all`` to its one-line error (:func:`publish`): every rank raises it;
- ``seen-count`` / ``seen``: the ranks that read a failure, so the failing rank exits only once they have
  (the store may live in its process). A rank that stops with a failed setup ignores SIGTERM from then on:
  torchrun's agent SIGTERMs the others as soon as one rank exits, and each should still say why and exit 2.

While waiting, a rank polls the store every 50 ms and watches the heartbeats of the ranks not yet ready:
one that exited, or whose beat stands still for ``stale_s``, ends the wait at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import torch.distributed as dist

from cleanfit.errors import TrainingError
from cleanfit.training.heartbeat import EXITED, Heartbeat, attempt_prefix, describe

__all__ = ["meet", "publish"]

POLL_S = 0.05


def meet(beat: Heartbeat, phase: int, *, limit_s: float, stale_s: float) -> str:
    """This rank is ready; wait for the others (up to ``limit_s``). Returns ``"ok"`` or a failed rank's error."""
    prefix = f"{attempt_prefix()}/setup/{phase}"
    try:
        store = beat.store()
        store.set(f"{prefix}/{beat.rank}", "ok")
        if store.add(f"{prefix}/count", 1) >= beat.world_size:
            store.set(f"{prefix}/all", "ok")
        _wait(beat, prefix, limit_s=limit_s, stale_s=stale_s)
        outcome = store.get(f"{prefix}/all").decode()
        if outcome != "ok":
            _finish_saying_it()
            _acknowledge(store, prefix, beat.world_size)
        return outcome
    except dist.DistError as exc:
        first = " ".join(str(exc).split())[:160]
        raise TrainingError(
            f"rank {beat.rank} of {beat.world_size}: lost the rendezvous store while the ranks were setting up "
            f"({first}); the process that held it (rank 0, unless torchrun's agent holds it) has ended: look at "
            "its output"
        ) from None


def publish(beat: Heartbeat, phase: int, message: str, *, wait_s: float) -> None:
    """Put ``message`` where the ranks meet; wait up to ``wait_s`` until every rank has read it.

    Never raises: a store that is gone must not hide the rank's own error.
    """
    prefix = f"{attempt_prefix()}/setup/{phase}"
    _finish_saying_it()
    with contextlib.suppress(dist.DistError):
        store = beat.store()
        store.set(f"{prefix}/all", message)
        _acknowledge(store, prefix, beat.world_size)
        deadline = time.monotonic() + wait_s
        while not store.check([f"{prefix}/seen"]) and time.monotonic() < deadline:
            time.sleep(POLL_S)


def _wait(beat: Heartbeat, prefix: str, *, limit_s: float, stale_s: float) -> None:
    """Poll until ``prefix/all`` is set; a rank that exited or stopped, or ``limit_s``, ends it (TrainingError)."""
    store = beat.store()
    started = time.monotonic()
    seen: dict[int, tuple[int, float]] = {}  # rank -> (its beat count, when that count was first seen)
    while not store.check([f"{prefix}/all"]):
        now = time.monotonic()
        waiting = [r for r in range(beat.world_size) if r != beat.rank and not store.check([f"{prefix}/{r}"])]
        for rank, last in beat.read(waiting).items():
            count = -1 if last is None else last.beat
            if rank not in seen or seen[rank][0] != count:
                seen[rank] = (count, now)
            if (last is not None and last.state == EXITED) or now - seen[rank][1] > stale_s:
                raise TrainingError(
                    f"rank {beat.rank} of {beat.world_size}: {describe(last, rank)} before training started (no "
                    f"heartbeat within CLEANFIT_DIST_TIMEOUT = {stale_s:g} s); look at its output")
        if now - started > limit_s:
            names = ", ".join(f"rank {r}" for r in waiting)
            raise TrainingError(
                f"rank {beat.rank} of {beat.world_size}: {names} did not finish setting up the run within "
                f"CLEANFIT_SETUP_TIMEOUT = {limit_s:g} s (its heartbeat still runs: it is busy, e.g. creating the "
                "MLflow store on a slow disk); raise CLEANFIT_SETUP_TIMEOUT, or look at its output")
        time.sleep(POLL_S)


def _finish_saying_it() -> None:
    """This rank stops with an error: from here on SIGTERM is ignored, so that it prints its line and exits 2.

    torchrun's agent SIGTERMs every rank as soon as one exits; without this the second rank to stop would
    die of that signal (exit -15) before or while saying why.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _acknowledge(store: dist.TCPStore, prefix: str, world_size: int) -> None:
    """Count this rank as having read a failed setup; the last one to read it sets ``prefix/seen``."""
    if store.add(f"{prefix}/seen-count", 1) >= world_size:
        store.set(f"{prefix}/seen", "1")
