"""The one owner of tracking's process-wide state: the sender process and the runs open through it.

A training process has one :class:`_WorkerLink <cleanfit.tracking.worker._WorkerLink>` (the worker
process that talks to MLflow), shared by its trackers. :class:`Sender` owns it (started on first use,
restarted if it died) together with the runs still open, which it finishes at interpreter exit, as
MLflow does. :data:`SHARED` is the instance every :class:`~cleanfit.tracking.MLflowTracker` uses unless
it is given another one (``MLflowTracker(sender=...)``: a test's stand-in, or a benchmark that reads
the worker's CPU time). A forked child (e.g. a DataLoader worker) owns neither the parent's worker nor
its runs: :meth:`Sender.forget` runs there.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Any, Protocol

from cleanfit.tracking.worker import Answer, _WorkerLink

__all__ = ["Sender", "SHARED"]

_log = logging.getLogger("cleanfit.tracking")


class _Run(Protocol):
    run_id: str | None

    def finish(self, status: str = "FINISHED") -> None: ...


class Sender:
    """Carries a tracker's requests to the worker process, and finishes the runs left open at ``close``.

    ``call`` waits for the answer (raises :class:`~cleanfit.tracking.worker.StoreError`), ``send``
    answers through a callback, ``barrier`` waits until everything sent before it is handled (True at
    once when no worker was ever started).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._link: _WorkerLink | None = None
        self._open: weakref.WeakSet[_Run] = weakref.WeakSet()

    @property
    def pid(self) -> int | None:
        """The worker process's id (None before the first request)."""
        link = self._link
        return None if link is None else link.pid

    def call(self, request: str, uri: str, args: tuple[Any, ...], timeout: float) -> Any:
        return self._started().call(request, uri, args, timeout)

    def send(self, request: str, uri: str, args: tuple[Any, ...], answer: Answer) -> None:
        self._started().send(request, uri, args, answer)

    def barrier(self, timeout: float) -> bool:
        link = self._link  # a dead worker still answers (at once): what it held is failed, not lost
        return True if link is None else link.barrier(timeout)

    def opened(self, run: _Run) -> None:
        self._open.add(run)

    def closed(self, run: _Run) -> None:
        self._open.discard(run)

    def close(self, timeout: float = 60.0) -> None:
        """Finish every open run (``FINISHED``), then let the worker send what it has and stop."""
        for run in list(self._open):
            try:
                run.finish("FINISHED")
            except Exception:  # noqa: BLE001 - never turn a clean exit into a traceback
                _log.exception("could not finish MLflow run %s at exit", run.run_id)
        if self._link is not None:
            self._link.close(timeout=timeout)

    def forget(self) -> None:
        """In a forked child: no worker, no open runs, and a fresh lock (one held at fork stays held)."""
        self._lock = threading.Lock()
        self._link = None
        self._open = weakref.WeakSet()

    def _started(self) -> _WorkerLink:
        with self._lock:
            if self._link is None or self._link.dead is not None:
                self._link = _WorkerLink()
            return self._link


SHARED = Sender()
atexit.register(SHARED.close)
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=SHARED.forget)
