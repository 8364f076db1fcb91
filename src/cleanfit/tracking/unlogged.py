"""The local fallback file of a tracking run: what could not reach the store, and how to send it later.

``cleanfit-unlogged-<run>.jsonl`` holds one JSON object a line, each with ``run_id`` (None when the
run could not even be opened), ``experiment``, ``tracking_uri`` and ``kind``:

    {"kind": "metric", "key": ..., "value": ..., "timestamp": <ms>, "step": ...}   (NaN/inf as strings)
    {"kind": "param" | "tag", "key": ..., "value": ...}
    {"kind": "artifact", "path": <absolute path>, "artifact_path": ...}
    {"kind": "status", "value": "FINISHED" | "FAILED" | "KILLED"}

:func:`cleanfit.tracking.replay.replay_unlogged` sends such a file to a store once it works again.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


class TrackingWarning(UserWarning):
    """The tracking store could not be written; the values went to a local file instead."""


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
