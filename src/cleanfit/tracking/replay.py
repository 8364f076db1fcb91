"""Send a tracking run's fallback file (:mod:`cleanfit.tracking.unlogged`) to MLflow once the store works."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from cleanfit.errors import CleanfitError
from cleanfit.tracking.mlflow_tracker import MLflowTracker

__all__ = ["replay_unlogged"]


def replay_unlogged(path: str | Path, tracking_uri: str | None = None) -> str:
    """Send a ``cleanfit-unlogged-*.jsonl`` file to MLflow; return the run id it went to.

    The store is ``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else the one the file names. The run
    is the file's run when the store has it (steps it already holds are skipped, so a replay never
    duplicates a value), else a new run in the file's experiment. Metrics keep their timestamps;
    artifacts whose files still exist are copied. Raises :class:`~cleanfit.errors.CleanfitError` when
    the store still cannot be written (the file is left as it is).
    """
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
