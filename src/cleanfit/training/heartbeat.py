"""Which rank is still there: a heartbeat per rank through the rendezvous store, read when a collective fails.

gloo's error for a lost peer names an address, not a rank. So every rank of a process group cleanfit
started runs one daemon thread that writes ``cleanfit/<attempt>/alive/<rank>`` =
``{"beat", "pid", "host", "step", "state"}`` every ``interval`` seconds over its own TCP connection to
the store (the training loop only stores its step number in an attribute: no store round trip on the
hot path). When a collective fails, the survivor marks itself ``"lost"`` and watches the other ranks'
beats for a few intervals (:meth:`Heartbeat.blame`): a rank whose beat does not move was killed or
stopped, a rank that says ``"exited"`` ended (an error of its own), a rank that says ``"lost"`` is
another survivor.

>>> b = Beat.parse(2, b'{"beat": 7, "pid": 4242, "host": "node-3", "step": 12, "state": "training"}')
>>> b.who()
'rank 2 (pid 4242 on node-3)'
>>> Beat.parse(1, None) is None
True
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import threading
import time
from dataclasses import dataclass

import torch.distributed as dist

__all__ = ["Beat", "Heartbeat", "store_client", "attempt_prefix", "describe"]

LOST, EXITED, TRAINING = "lost", "exited", "training"


def attempt_prefix() -> str:
    """``cleanfit/<torchrun restart count>``: keys of an earlier attempt in the same store are never read."""
    return f"cleanfit/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def store_client(timeout_s: float) -> dist.TCPStore:
    """A new client connection to the process group's store (``MASTER_ADDR:MASTER_PORT``, as ``env://``)."""
    return dist.TCPStore(os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ["MASTER_PORT"]), is_master=False,
                         timeout=datetime.timedelta(seconds=timeout_s), wait_for_workers=False)


@dataclass(frozen=True)
class Beat:
    """One rank's last heartbeat as read from the store."""

    rank: int
    beat: int
    pid: int
    host: str
    step: int
    state: str

    @classmethod
    def parse(cls, rank: int, raw: bytes | None) -> Beat | None:
        if raw is None:
            return None
        try:
            d = json.loads(raw)
            return cls(rank, int(d["beat"]), int(d["pid"]), str(d["host"]), int(d["step"]), str(d["state"]))
        except (ValueError, KeyError, TypeError, OverflowError):
            return None

    def who(self) -> str:
        return f"rank {self.rank} (pid {self.pid} on {self.host})"


class Heartbeat:
    """This rank's beat (a daemon thread) and the reading of the others' (the calling thread)."""

    def __init__(self, rank: int, world_size: int, interval_s: float, store_timeout_s: float) -> None:
        self.rank, self.world_size, self.interval_s = rank, world_size, interval_s
        self.step = 0  # the Trainer's optimizer step, set by distributed.note_step (an attribute write)
        self.state = TRAINING
        self._timeout_s = store_timeout_s
        self._prefix = f"{attempt_prefix()}/alive"
        self._beats = 0
        self._host = socket.gethostname()
        self._stop = threading.Event()
        self._reader: dist.TCPStore | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        """The first beat now (so every rank has a key before training), then one every ``interval_s``."""
        store = store_client(self._timeout_s)
        self._write(store)
        self._thread = threading.Thread(target=self._run, args=(store,), name="cleanfit-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """The process ends: say so (unless it reported a lost peer: then it stays a survivor)."""
        if self.state != LOST:
            self.state = EXITED
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=min(2.0, self._timeout_s))  # the last word is best effort

    def _run(self, store: dist.TCPStore) -> None:
        with contextlib.suppress(Exception):  # a store that is gone ends the thread quietly
            while not self._stop.wait(self.interval_s):
                self._write(store)
            self._write(store)  # the final state (exited or lost)

    def _write(self, store: dist.TCPStore) -> None:
        self._beats += 1
        value = {"beat": self._beats, "pid": os.getpid(), "host": self._host, "step": self.step,
                 "state": self.state}
        store.set(f"{self._prefix}/{self.rank}", json.dumps(value))

    # -- reading the others ----------------------------------------------------------------------
    def store(self) -> dist.TCPStore:
        """The calling thread's own connection to the store (the beat thread keeps its own)."""
        if self._reader is None:
            self._reader = store_client(self._timeout_s)
        return self._reader

    def read(self, ranks: list[int]) -> dict[int, Beat | None]:
        """The last beat of each rank in ``ranks`` (None: it never sent one). Raises DistError without a store."""
        store = self.store()
        keys = [f"{self._prefix}/{r}" for r in ranks]
        present = {r for r, k in zip(ranks, keys) if store.check([k])}
        return {r: Beat.parse(r, store.get(k)) if r in present else None for r, k in zip(ranks, keys)}

    def blame(self) -> list[tuple[Beat | None, int, str]] | None:
        """After a failed collective: ``(last beat, rank, what happened)`` for each rank that is gone.

        This rank becomes a survivor (``"lost"``) first, then watches the others for three intervals:
        a beat that does not move is ``"stopped responding"``, ``"exited"`` is a process that ended.
        Returns None when the store cannot be read (it went with the rank that held it).
        """
        self.state = LOST
        others = [r for r in range(self.world_size) if r != self.rank]
        try:
            self._write(self.store())  # at once: the other survivors must not take this rank for the lost one
            first = now = self.read(others)
            deadline = time.monotonic() + 3 * self.interval_s
            moving: set[int] = set()
            while time.monotonic() < deadline and len(moving) < len(others):
                time.sleep(self.interval_s / 2)
                now = self.read(others)
                moving |= {r for r in others if _moved(first[r], now[r])}
        except dist.DistError:
            return None
        gone = []
        for r in others:
            beat = now[r]
            if beat is not None and beat.state == LOST:
                continue  # another survivor
            if beat is not None and beat.state == EXITED:
                gone.append((beat, r, "exited"))
            elif r not in moving:
                gone.append((beat, r, "stopped responding"))
        return gone


def describe(beat: Beat | None, rank: int, what: str = "stopped responding", *, at: int | None = None) -> str:
    """A lost rank in words, from its last beat: who it was and what happened (at which step).

    >>> describe(Beat(2, 9, 4242, "node-3", 11, "training"), 2, at=12)
    'rank 2 (pid 4242 on node-3), which stopped responding at step 12 (its last heartbeat: step 11)'
    >>> describe(None, 1)
    'rank 1, which never sent a heartbeat'
    """
    if beat is None:
        return f"rank {rank}, which never sent a heartbeat"
    if beat.state == EXITED:
        what = "exited"
    if at is None:
        return f"{beat.who()}, which {what}"
    return f"{beat.who()}, which {what} at step {at} (its last heartbeat: step {beat.step})"


def _moved(before: Beat | None, after: Beat | None) -> bool:
    return after is not None and (before is None or after.beat != before.beat)
