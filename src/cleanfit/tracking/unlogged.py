"""The local fallback file of a tracking run: what could not reach the store, and how to send it later.

``cleanfit-unlogged-<run>.jsonl`` holds one JSON object a line, each with ``run_id`` (None when the
run could not even be opened), ``experiment``, ``tracking_uri`` and ``kind``:

    {"kind": "metric", "key": ..., "value": ..., "timestamp": <ms>, "step": ...}   (NaN/inf as strings)
    {"kind": "param" | "tag", "key": ..., "value": ...}
    {"kind": "artifact", "path": <absolute path>, "artifact_path": ...}
    {"kind": "status", "value": "FINISHED" | "FAILED" | "KILLED"}

:func:`replay_unlogged` sends such a file to a store once it works again.
"""

from __future__ import annotations

import json
import math
import os
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cleanfit.errors import CleanfitError

_LOCK = threading.Lock()


def append_records(path: Path, head: dict[str, Any], records: Iterable[dict[str, Any]]) -> None:
    """Append records (each merged over ``head``) to ``path``, one JSON object a line."""
    text = "".join(json.dumps({**head, **_jsonable(r)}) + "\n" for r in records)
    with _LOCK:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    value = record.get("value")
    if isinstance(value, float) and not math.isfinite(value):  # JSON has no NaN/inf
        return {**record, "value": str(value)}
    return record


def replay_unlogged(path: str | Path, tracking_uri: str | None = None) -> str:
    """Send a ``cleanfit-unlogged-*.jsonl`` file to MLflow; return the run id it went to.

    The store is ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the one the file names. The run
    is the file's run when the store has it (steps it already holds are skipped, so a replay never
    duplicates a value), else a new run in the file's experiment. Metrics keep their timestamps;
    artifacts whose files still exist are copied. Raises :class:`~cleanfit.errors.CleanfitError` when
    the store still cannot be written (the file is left as it is).
    """
    from cleanfit.tracking.mlflow_tracker import MLflowTracker

    path = Path(path)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not records:
        raise CleanfitError(f"{path} holds no records to replay")
    first = records[0]
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or first.get("tracking_uri")
    tracker = MLflowTracker(experiment=first.get("experiment") or "cleanfit", tracking_uri=uri,
                            unlogged_dir=path.parent / "replay-failed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracker.start(run_id=first.get("run_id"))
    if tracker.failure_ is not None:
        tracker.abandon()
        raise CleanfitError(f"cannot replay {path}: {tracker.failure_}. Fix the store (or pass "
                            "tracking_uri=...) and call replay_unlogged again.")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_kind.setdefault(record["kind"], []).append(record)
    tracker.log_params({r["key"]: r["value"] for r in by_kind.get("param", [])})
    tracker.set_tags({r["key"]: r["value"] for r in by_kind.get("tag", [])})
    tracker.log_rows([(r["key"], float(r["value"]), int(r["timestamp"]), int(r["step"]))
                      for r in by_kind.get("metric", [])])
    for record in by_kind.get("artifact", []):
        if Path(record["path"]).exists():
            tracker.log_artifact(record["path"], record.get("artifact_path"))
    statuses = by_kind.get("status", [])
    tracker.finish(statuses[-1]["value"] if statuses else "FINISHED")
    if tracker.failure_ is not None:
        raise CleanfitError(f"replaying {path} failed part way: {tracker.failure_}; what was not sent is in "
                            f"{tracker.unlogged_path_}")
    return str(tracker.run_id)
