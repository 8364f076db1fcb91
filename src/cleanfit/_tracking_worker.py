"""The process that sends buffered metrics to MLflow, so that the training loop never waits on the store.

Why a process and not a thread: sending one metric through MLflow's SQL store costs about 50-70 µs of
Python (SQLAlchemy) time, which a thread would take from the training loop under the GIL. The
training process only appends ``(key, value, timestamp, step)`` tuples to a list and hands chunks of at
most 1000 (MLflow's ``log_batch`` limit) to this worker through a pipe.

Protocol (pickled tuples, in order, over the worker's stdin/stdout):

    parent -> worker   ("log", seq, tracking_uri, run_id, rows)   rows: [(key, value, ts_ms, step), ...]
                       ("ping", seq)                               a barrier for flush()
    worker -> parent   ("ok", seq) | ("error", seq, message) | ("pong", seq)

The worker handles messages in order, so a ``pong`` means every earlier message was sent or failed.
It ignores Ctrl-C (the parent decides when to stop) and exits when its stdin closes, after handling
everything it received, so a parent killed hard still leaves its last metrics in the store.

:class:`_WorkerLink` is the parent side: one worker per training process, shared by its trackers.
"""

from __future__ import annotations

import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

Rows = list[tuple[str, float, int, int]]
FailureCallback = Callable[[Rows, str], None]


def _serve(inp: BinaryIO, out: BinaryIO) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    clients: dict[str, MlflowClient] = {}
    while True:
        try:
            message = pickle.load(inp)
        except EOFError:
            return
        if message[0] == "ping":
            reply: tuple[Any, ...] = ("pong", message[1])
        else:
            _, seq, uri, run_id, rows = message
            reply = ("ok", seq)
            for attempt in range(2):  # one retry: SQLite already waits 20 s on a lock per attempt
                try:
                    client = clients.get(uri) or clients.setdefault(uri, MlflowClient(uri))
                    client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in rows])
                    reply = ("ok", seq)
                    break
                except Exception as exc:  # noqa: BLE001 - every store failure is reported to the parent
                    reply = ("error", seq, f"{type(exc).__name__}: {exc}".strip()[:2000])
        pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


def _main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the original stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, out)
    out.close()


class _WorkerLink:
    """The training process's end of one worker process.

    ``submit`` queues a chunk (never blocks on the store); ``barrier`` waits until everything queued
    before it is handled. A chunk the store rejects, or that is in flight when the worker dies, is
    handed back to the ``on_failure`` callback given with it, so nothing is lost silently.
    """

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "cleanfit._tracking_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self._seq = itertools.count(1)
        self._cond = threading.Condition()
        self._inflight: dict[int, tuple[Rows, FailureCallback]] = {}
        self._pongs: set[int] = set()
        self._outbox: list[tuple[Any, ...] | None] = []
        self.dead: str | None = None
        threading.Thread(target=self._write_loop, name="cleanfit-tracking-writer", daemon=True).start()
        self._reader = threading.Thread(target=self._read_loop, name="cleanfit-tracking-reader", daemon=True)
        self._reader.start()

    def submit(self, uri: str, run_id: str, rows: Rows, on_failure: FailureCallback) -> None:
        with self._cond:
            if self.dead is None:
                seq = next(self._seq)
                self._inflight[seq] = (rows, on_failure)
                self._outbox.append(("log", seq, uri, run_id, rows))
                self._cond.notify_all()
                return
            reason = self.dead
        on_failure(rows, reason)

    def barrier(self, timeout: float) -> bool:
        """Wait until every message queued before this call is handled; False on timeout."""
        with self._cond:
            if self.dead is not None:
                return True
            seq = next(self._seq)
            self._outbox.append(("ping", seq))
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: seq in self._pongs or self.dead is not None, timeout)
            self._pongs.discard(seq)
            return done

    def close(self, timeout: float) -> None:
        """Let the worker finish what it has, then stop it."""
        with self._cond:
            self._outbox.append(None)
            self._cond.notify_all()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout)

    def _write_loop(self) -> None:
        assert self._proc.stdin is not None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._outbox))
                batch, self._outbox = self._outbox, []
            try:
                for message in batch:
                    if message is None:
                        self._proc.stdin.close()
                        return
                    pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self._proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return  # the reader sees the worker's end and fails what is in flight

    def _read_loop(self) -> None:
        assert self._proc.stdout is not None
        while True:
            try:
                reply = pickle.load(self._proc.stdout)
            except Exception:  # noqa: BLE001 - EOF or a broken stream: the worker is gone
                break
            failed: tuple[Rows, FailureCallback, str] | None = None
            with self._cond:
                if reply[0] == "pong":
                    self._pongs.add(reply[1])
                else:
                    rows, on_failure = self._inflight.pop(reply[1])
                    if reply[0] == "error":
                        failed = (rows, on_failure, reply[2])
                self._cond.notify_all()
            if failed is not None:
                failed[1](failed[0], failed[2])
        self._proc.stdout.close()
        code = self._proc.wait()
        with self._cond:
            self.dead = f"the tracking worker process exited (code {code})"
            lost, self._inflight = list(self._inflight.values()), {}
            self._cond.notify_all()
        for rows, on_failure in lost:
            on_failure(rows, self.dead)


if __name__ == "__main__":
    _main()
