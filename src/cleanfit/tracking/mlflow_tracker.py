"""The MLflow tracker: a :class:`~cleanfit.tracking.base.Tracker` that logs to MLflow.

:class:`MLflowTracker` keeps tracking off the training step's path: ``log_metrics``
appends to a list in memory; full chunks (and everything at ``flush()``) go to a worker process that
sends them with MLflow's ``log_batch`` (see :mod:`cleanfit.tracking.worker`).

If the store is unreachable, locked or rejects a write, training goes on: the failure is reported
once (a :class:`TrackingWarning` and the ``cleanfit.tracking`` logger, and ``tracker.failure_``), and
from then on every param, metric, tag and artifact path that did not reach the store is appended to
``cleanfit-unlogged-<run>.jsonl`` (one JSON object a line) in ``unlogged_dir``. Nothing is dropped.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cleanfit._util.mappings import flatten
from cleanfit.errors import ConfigError
from cleanfit.tracking.sender import SHARED, Sender
from cleanfit.tracking.unlogged import TrackingWarning, append_records
from cleanfit.tracking.worker import Rows, StoreError, _absolute, _probe_sqlite

__all__ = ["MLflowTracker"]

_log = logging.getLogger("cleanfit.tracking")
_MAX_METRICS = 1000  # MLflow's log_batch limits
_MAX_PARAMS_TAGS = 100
_MAX_PARAM_LEN = 6000
_MAX_TAG_LEN = 8000
_NAME_OK = re.compile(r"^[\w\-./ :]+$")  # the characters MLflow accepts in metric/param names


class MLflowTracker:
    """Log a run to MLflow without slowing training down.

    ``tracking_uri`` defaults to ``MLFLOW_TRACKING_URI``, else MLflow's embedded SQLite store
    ``sqlite:///mlflow.db`` in the working directory (artifacts under ``./mlruns``). ``start(run_id=...)``
    resumes that run; metrics already in it (up to each key's last step) are not sent again.

    ``unlogged_dir`` (default: the working directory at ``start``) holds the fallback file
    ``cleanfit-unlogged-<run>.jsonl``; ``flush_interval`` (seconds) bounds how long a value waits in
    memory before it is handed to the sender process (checked when metrics are logged; once handed
    over, values reach the store even if the training process is killed); ``flush_timeout`` bounds
    how long ``flush()`` and the other calls that wait on the store may take; ``sender`` carries the
    requests to the store (default: this process's one sender process,
    :data:`cleanfit.tracking.sender.SHARED`, closed at exit; a
    :class:`~cleanfit.tracking.sender.Sender` of your own starts its own worker, and you close it).

    On resume, values at or below each metric's last step in the run are skipped, so re-sending a
    restored History after ``start(run_id=...)`` fills gaps a killed process left without duplicates.

    Use it as a context manager, or call ``finish(status)`` yourself: ``with MLflowTracker() as t:``
    ends the run ``FINISHED``, ``FAILED`` on an exception, ``KILLED`` on Ctrl-C. At interpreter exit
    every open run is flushed and ended ``FINISHED``, as MLflow does.
    """

    def __init__(
        self,
        experiment: str = "cleanfit",
        tracking_uri: str | None = None,
        run_name: str | None = None,
        *,
        unlogged_dir: str | Path | None = None,
        flush_interval: float = 1.0,
        flush_timeout: float = 120.0,
        sender: Sender | None = None,
    ) -> None:
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.run_name = run_name
        self.unlogged_dir = unlogged_dir
        self.flush_interval = flush_interval
        self.flush_timeout = flush_timeout
        self._sender = sender if sender is not None else SHARED
        self.run_id: str | None = None
        self.tracking_uri_: str | None = None
        self.failure_: str | None = None
        self.unlogged_path_: Path | None = None
        self._state = "new"  # new -> running -> finished
        self._lock = threading.Lock()
        self._buffer: Rows = []
        self._last_ship = time.monotonic()
        self._floor: dict[str, int] = {}
        self._names_ok: set[str] = set()
        self._params_sent: dict[str, str] = {}
        self._reported = False
        self._opened = False  # the store answered "open": only then can it hold requests of this run

    def __repr__(self) -> str:
        shown = f"experiment={self.experiment!r}"
        if self.run_id is not None:
            shown += f", run_id={self.run_id!r}"
        return f"MLflowTracker({shown})"

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, *, run_id: str | None = None) -> str | None:
        """Open the run (a new one, or ``run_id`` resumed) and return its id; idempotent."""
        if self._state == "running":
            if run_id is not None and run_id != self.run_id:
                raise ConfigError(
                    f"MLflowTracker.start(run_id={run_id!r}): this tracker already runs {self.run_id!r}; "
                    "create a new MLflowTracker to resume another run"
                )
            return self.run_id
        self.failure_, self._reported, self._floor, self._params_sent = None, False, {}, {}  # a new run
        self._opened = False
        self.tracking_uri_ = _absolute(
            self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
        )
        directory = Path(self.unlogged_dir) if self.unlogged_dir is not None else Path.cwd()
        self._state = "running"
        self._sender.opened(self)
        try:
            _probe_sqlite(self.tracking_uri_)
            opened = self._sender.call("open", self.tracking_uri_, (self.experiment, self.run_name, run_id, os.getcwd()),
                                  self.flush_timeout)
        except (StoreError, OSError, sqlite3.Error) as exc:  # training goes on without the store
            self.run_id = run_id
            self.unlogged_path_ = directory / f"cleanfit-unlogged-{run_id or _local_id(self.run_name)}.jsonl"
            self._fail(f"could not open the run in {self.tracking_uri_}: {type(exc).__name__}: {exc}")
            return self.run_id
        if run_id is not None and not opened["resumed"]:
            warnings.warn(
                f"MLflow run {run_id!r} is not in {self.tracking_uri_}; started a new run instead (the metrics "
                "logged before the resume are in the other store)", TrackingWarning, stacklevel=2,
            )
        self.run_id = opened["run_id"]
        self._opened = True
        self._floor, self._params_sent = opened["floor"], opened["params"]
        self.unlogged_path_ = directory / f"cleanfit-unlogged-{self.run_id}.jsonl"
        return self.run_id

    def finish(self, status: str = "FINISHED") -> None:
        """Send everything, then end the run with ``status`` (``FINISHED``, ``FAILED``, ``KILLED``)."""
        if self._state != "running":
            return
        self.flush()
        self._state = "finished"
        self._sender.closed(self)
        if self.failure_ is None and self.run_id is not None:
            try:
                self._sender.call("end", self.tracking_uri_, (self.run_id, status), self.flush_timeout)
            except StoreError as exc:
                self._fail(f"could not end the run: {exc}")
        if self.failure_ is not None:
            self._write_unlogged([{"kind": "status", "value": status}])
        self._report()

    def __enter__(self) -> MLflowTracker:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: Any) -> None:
        if kind is None:
            self.finish("FINISHED")
        else:
            self.finish("KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED")

    # -- logging ----------------------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffer ``metrics`` at ``step`` (no I/O here). Values must be numbers (``float()`` is taken)."""
        self._ensure_started()
        timestamp = int(time.time() * 1000)
        rows = [(self._name(k), float(v), timestamp, step) for k, v in metrics.items()]
        if self._floor:  # a resumed run: never send a step the run already holds
            rows = [r for r in rows if r[3] > self._floor.get(r[0], -1)]
        with self._lock:
            self._buffer.extend(rows)
            full = len(self._buffer) >= _MAX_METRICS
        if full or time.monotonic() - self._last_ship >= self.flush_interval:
            self._ship()

    def log_rows(self, rows: Rows) -> None:
        """Buffer ready ``(key, value, timestamp_ms, step)`` rows (keeps their timestamps; used by replay)."""
        self._ensure_started()
        rows = [(self._name(k), float(v), int(t), int(s)) for k, v, t, s in rows]
        if self._floor:
            rows = [r for r in rows if r[3] > self._floor.get(r[0], -1)]
        with self._lock:
            self._buffer.extend(rows)
        self._ship()

    def abandon(self) -> None:
        """Drop a run that could not be opened without writing anything more (replay uses it)."""
        self._state = "finished"
        self._sender.closed(self)

    def flush(self) -> None:
        """Block until every buffered metric is in the store (or, if it failed, in the local file)."""
        if self._state != "running":
            return
        self._ship()
        # Chunks shipped before a failure are still answered: wait for them too. A run that never
        # opened shipped nothing; its "open" may still hang in the sender (an HTTP store
        # retrying): waiting for that again at every flush would stall training flush_timeout each time.
        if self._opened and not self._sender.barrier(self.flush_timeout):
            self._fail(f"the store did not answer within flush_timeout={self.flush_timeout} s")
        self._report()

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (nested mappings are flattened to ``a.b``; long values are shortened)."""
        self._ensure_started()
        flat = {self._name(k): _text(v, _MAX_PARAM_LEN) for k, v in flatten(params).items()}
        new = {}
        for key, value in flat.items():
            if key not in self._params_sent:
                new[key] = value
            elif self._params_sent[key] != value:  # MLflow params are immutable
                warnings.warn(
                    f"param {key!r} is already {self._params_sent[key]!r} in run {self.run_id}; the new "
                    f"value {value!r} is not logged (MLflow params cannot change; start a new run)",
                    TrackingWarning, stacklevel=2,
                )
        self._params_sent.update(new)
        self._send_now("param", new)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set run tags (searchable in MLflow: ``tags.diagnosis LIKE '%overfitting%'``)."""
        self._ensure_started()
        self._send_now("tag", {str(k): _text(v, _MAX_TAG_LEN) for k, v in tags.items()})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file (or a directory's files) into the run's artifacts now."""
        self._ensure_started()
        path = Path(path)
        if self.failure_ is None:
            try:
                self._sender.call("artifact", self.tracking_uri_, (self.run_id, str(path.resolve()), artifact_path),
                             self.flush_timeout)
                return
            except StoreError as exc:
                self._fail(f"could not log artifact {path}: {exc}")
        self._write_unlogged([{"kind": "artifact", "path": str(path.resolve()), "artifact_path": artifact_path}])
        self._report()

    # -- internals --------------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._state == "new":
            self.start()
        elif self._state == "finished":
            raise ConfigError(
                f"MLflowTracker: run {self.run_id} is finished; call start() to open a new run, or "
                f"start(run_id={self.run_id!r}) to add to this one"
            )

    def _name(self, key: str) -> str:
        if key in self._names_ok:
            return key
        if not isinstance(key, str) or not _NAME_OK.match(key) or len(key) > 250:
            raise ConfigError(
                f"metric/param name {key!r} cannot be logged to MLflow: use letters, digits, '_', '-', "
                "'.', ' ', '/' or ':' (at most 250 characters)"
            )
        self._names_ok.add(key)
        return key

    def _ship(self) -> None:
        with self._lock:
            rows, self._buffer = self._buffer, []
            self._last_ship = time.monotonic()
        if not rows:
            return
        if self.failure_ is not None:
            self._unlogged_rows(rows, self.failure_)
            return
        for i in range(0, len(rows), _MAX_METRICS):
            chunk = rows[i:i + _MAX_METRICS]
            self._sender.send("log", self.tracking_uri_, (self.run_id, chunk),
                      lambda ok, error, chunk=chunk: ok or self._unlogged_rows(chunk, error))

    def _send_now(self, kind: str, values: dict[str, str]) -> None:
        if not values:
            return
        if self.failure_ is None:
            items = list(values.items())
            try:
                for i in range(0, len(items), _MAX_PARAMS_TAGS):
                    self._sender.call(f"{kind}s", self.tracking_uri_, (self.run_id, items[i:i + _MAX_PARAMS_TAGS]),
                                 self.flush_timeout)
                return
            except StoreError as exc:
                self._fail(f"could not log {kind}s: {exc}")
        self._write_unlogged([{"kind": kind, "key": k, "value": v} for k, v in values.items()])
        self._report()

    def _unlogged_rows(self, rows: Rows, reason: str) -> None:
        """Called (from any thread) with metrics that did not reach the store."""
        if self.failure_ is None:
            self._fail(f"could not log metrics: {reason}")
        self._write_unlogged([{"kind": "metric", "key": k, "value": v, "timestamp": t, "step": s}
                              for k, v, t, s in rows])

    def _fail(self, message: str) -> None:
        self.failure_ = self.failure_ or message

    def _report(self) -> None:
        if self.failure_ is not None and not self._reported:
            self._reported = True
            text = (
                f"MLflow tracking failed ({self.failure_}); training goes on and every value that could "
                f"not be logged is appended to {self.unlogged_path_}"
            )
            _log.warning(text)
            warnings.warn(text, TrackingWarning, stacklevel=3)

    def _write_unlogged(self, records: list[dict[str, Any]]) -> None:
        assert self.unlogged_path_ is not None
        head = {"run_id": self.run_id, "experiment": self.experiment, "tracking_uri": self.tracking_uri_}
        append_records(self.unlogged_path_, head, records)


def _text(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _local_id(run_name: str | None) -> str:
    stem = re.sub(r"[^\w\-]+", "-", run_name) + "-" if run_name else ""
    return f"{stem}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
