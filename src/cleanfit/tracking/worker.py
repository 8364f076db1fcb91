"""The process that talks to MLflow, so that the training process never waits on (or imports) it.

Why a process and not a thread: sending one metric through MLflow's SQL store costs about 50-70 µs of
Python (SQLAlchemy) time, which a thread would take from the training loop under the GIL, and
importing MLflow costs seconds (MLflow's own asynchronous logging, threads in the training process,
was measured against this process: docs/BENCHMARKS.md, "Tracking"). The training process only
appends ``(key, value, timestamp, step)`` tuples to a list and hands chunks of at most 1000
(MLflow's ``log_batch`` limit) to this worker through a pipe; the few other calls (open the run,
params, tags, artifacts, end) go the same way and wait for their answer.

Protocol (pickled tuples, handled strictly in order, over the worker's stdin/stdout):

    parent -> worker   (request, seq, tracking_uri, *args)   request: open, log, params, tags, artifact, end
                                                              (open's last argument: the parent's cwd)
                       ("ping", seq)                          a barrier for flush()
    worker -> parent   ("ok", seq, result) | ("error", seq, message) | ("pong", seq)

The worker runs at a lower priority (nice 10), ignores Ctrl-C and SIGTERM (the parent decides when to stop) and exits when its stdin closes, after
handling everything it received, so a parent killed hard still leaves its last metrics in the store.
:class:`_WorkerLink` is the parent side: one worker per training process, shared by its trackers.
"""

from __future__ import annotations

import itertools
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from cleanfit.tracking.store import mlflow_client

Rows = list[tuple[str, float, int, int]]
Answer = Callable[[bool, Any], None]  # (ok, result or error message)


class StoreError(Exception):
    """The store (or the worker) could not do what was asked; the message says why."""


# -- the worker process ---------------------------------------------------------------------------
def _open(client: Any, experiment: str, run_name: str | None, run_id: str | None) -> dict[str, Any]:
    """A new run in ``experiment``, or ``run_id`` resumed with what it already holds."""
    from mlflow.exceptions import MlflowException

    if run_id is not None:
        try:
            run = client.get_run(run_id)
        except MlflowException:
            pass  # not in this store: a new run (the parent warns)
        else:
            floor = {k: max(m.step for m in client.get_metric_history(run_id, k)) for k in run.data.metrics}
            client.update_run(run_id, status="RUNNING")
            return {"run_id": run_id, "resumed": True, "floor": floor, "params": dict(run.data.params)}
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        try:
            experiment_id = client.create_experiment(experiment)
        except MlflowException:  # another process created it a moment ago
            experiment_id = client.get_experiment_by_name(experiment).experiment_id
    new_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    return {"run_id": new_id, "resumed": False, "floor": {}, "params": {}}


def _handle(client: Any, request: str, args: tuple[Any, ...]) -> Any:
    from mlflow.entities import Metric, Param, RunTag

    if request == "open":
        return _open(client, *args)
    run_id = args[0]
    if request == "log":
        client.log_batch(run_id, metrics=[Metric(k, v, t, s) for k, v, t, s in args[1]])
    elif request == "params":
        client.log_batch(run_id, params=[Param(k, v) for k, v in args[1]])
    elif request == "tags":
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in args[1]])
    elif request == "artifact":
        path, artifact_path = args[1], args[2]
        if Path(path).is_dir():
            client.log_artifacts(run_id, path, artifact_path)
        else:
            client.log_artifact(run_id, path, artifact_path)
    elif request == "end":
        client.set_terminated(run_id, status=args[1])
    else:
        raise ValueError(f"unknown request {request!r}")
    return None


def _serve(inp: BinaryIO, out: BinaryIO) -> None:
    clients: dict[str, Any] = {}
    while True:
        try:
            message = pickle.load(inp)
        except EOFError:
            return
        if message[0] == "ping":
            reply: tuple[Any, ...] = ("pong", message[1])
        else:
            request, seq, uri, *args = message
            if request == "open" and uri not in clients:
                # MLflow puts a new SQLite store's artifacts under ./mlruns of the working directory
                # when the store is first opened: make that the training process's working directory.
                os.chdir(args.pop())
            elif request == "open":
                args.pop()
            attempts = 1 if request in ("open", "artifact") else 2  # SQLite already waits 20 s on a lock
            for _ in range(attempts):
                try:
                    client = clients.get(uri) or clients.setdefault(uri, mlflow_client(uri))
                    reply = ("ok", seq, _handle(client, request, tuple(args)))
                    break
                except Exception as exc:  # noqa: BLE001 - every store failure is reported to the parent
                    reply = ("error", seq, f"{type(exc).__name__}: {exc}".strip()[:2000])
        pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()


def _main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a group-wide SIGTERM: the parent ends the run first
    try:
        os.nice(10)  # background work: on a busy machine the training process comes first
    except (AttributeError, OSError):  # not on Windows
        pass
    # The protocol owns the original stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, out)
    out.close()


# -- the training process's side ------------------------------------------------------------------
def _absolute(uri: str) -> str:
    """A relative SQLite path resolved against the working directory (the sender runs elsewhere)."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri.removeprefix("sqlite:///")
        if path and not path.startswith(":memory:"):
            return f"sqlite:///{Path.cwd() / path}"
    return uri


def _probe_sqlite(uri: str) -> None:
    """Fail fast on an SQLite store that cannot be opened (MLflow itself retries for ~100 s)."""
    if not uri.startswith("sqlite:///"):
        return
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if path in ("", ":memory:"):
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=20) as conn:
        conn.execute("PRAGMA schema_version").fetchone()
    conn.close()


class _WorkerLink:
    """The training process's end of one worker process.

    ``send`` queues a request and returns at once; its ``answer`` callback runs (on a reader thread)
    when the worker replies, or with ``ok=False`` if the worker dies first, so nothing is lost silently.
    ``call`` waits for the answer; ``barrier`` waits until everything queued before it is handled.
    """

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            # -c, not -m: runpy would warn that the package already imported this module
            [sys.executable, "-c", "from cleanfit.tracking.worker import _main; _main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=env,
        )
        self._seq = itertools.count(1)
        self._cond = threading.Condition()
        self._waiting: dict[int, Answer] = {}
        self._pongs: set[int] = set()
        self._outbox: list[tuple[Any, ...] | None] = []
        self.dead: str | None = None
        threading.Thread(target=self._write_loop, name="cleanfit-tracking-writer", daemon=True).start()
        self._reader = threading.Thread(target=self._read_loop, name="cleanfit-tracking-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def send(self, request: str, uri: str, args: tuple[Any, ...], answer: Answer) -> None:
        with self._cond:
            if self.dead is None:
                seq = next(self._seq)
                self._waiting[seq] = answer
                self._outbox.append((request, seq, uri, *args))
                self._cond.notify_all()
                return
            reason = self.dead
        answer(False, reason)

    def call(self, request: str, uri: str, args: tuple[Any, ...], timeout: float) -> Any:
        """Send a request and wait for its result; raises :class:`StoreError` on failure or timeout."""
        done = threading.Event()
        box: list[tuple[bool, Any]] = []
        self.send(request, uri, args, lambda ok, result: (box.append((ok, result)), done.set()))
        if not done.wait(timeout):
            raise StoreError(f"the store did not answer {request!r} within {timeout} s")
        ok, result = box[0]
        if not ok:
            raise StoreError(result)
        return result

    def barrier(self, timeout: float) -> bool:
        """Wait until every request queued before this call is handled; False on timeout."""
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
        stdin = self._proc.stdin
        assert stdin is not None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._outbox))
                batch, self._outbox = self._outbox, []
            try:
                for message in batch:
                    if message is None:
                        stdin.close()
                        return
                    pickle.dump(message, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
            except (OSError, ValueError):
                return  # the reader sees the worker's end and fails what is waiting

    def _read_loop(self) -> None:
        stdout = self._proc.stdout
        assert stdout is not None
        while True:
            try:
                reply = pickle.load(stdout)
            except Exception:  # noqa: BLE001 - EOF or a broken stream: the worker is gone
                break
            answer = None
            with self._cond:
                if reply[0] == "pong":
                    self._pongs.add(reply[1])
                else:
                    answer = self._waiting.pop(reply[1])
                self._cond.notify_all()
            if answer is not None:
                answer(reply[0] == "ok", reply[2])
        stdout.close()
        code = self._proc.wait()
        with self._cond:
            self.dead = f"the tracking worker process exited (code {code})"
            lost, self._waiting = list(self._waiting.values()), {}
            self._cond.notify_all()
        for answer in lost:
            answer(False, self.dead)


if __name__ == "__main__":
    _main()
