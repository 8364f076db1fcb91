"""Check ``temporal``: held-out rows that happened before train rows.

With a time column, a model evaluated on val/test rows that precede some train rows has seen the
future. The check counts, for each held-out part, the rows earlier than the latest earlier-part row,
looks at each group separately when groups are given, and verifies a requested gap (``splits.gap``
rows or ``splits.gap_time`` in the time column's units) between the parts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cleanfit.auditing.inputs import PART_NAMES, AuditData, plural
from cleanfit.findings import Finding

# more than this share of a held-out part before the end of train: critical
CRITICAL_SHARE = 0.01


def fmt_time(data: AuditData, value: float) -> str:
    """A time value as the column shows it: a date, a duration or a number (``data.time_format``)."""
    if data.time_format == "timedelta":
        return str(pd.Timedelta(int(value)))
    if data.time_is_datetime:
        return str(pd.Timestamp(int(value), tz="UTC" if data.time_format == "datetime-utc" else None))
    return f"{value:g}"


def check_temporal(data: AuditData) -> list[Finding]:
    assert data.time is not None and data.part is not None
    t, part = data.time, data.part
    findings = []
    details: dict[str, Any] = {"time_column": data.time_name, "parts": []}
    present = [p for p in (0, 1, 2) if np.any(part == p)]
    for i, late in enumerate(present[1:], start=1):
        earlier = np.isin(part, present[:i])
        late_rows = part == late
        boundary = t[earlier].max()
        before = int(np.sum(t[late_rows] < boundary))
        n_late = int(late_rows.sum())
        per_group = _per_group_violations(data, earlier, late_rows) if data.groups is not None else None
        details["parts"].append({
            "part": PART_NAMES[late], "rows_before_earlier_parts_end": before, "rows": n_late,
            "range": [fmt_time(data, t[late_rows].min()), fmt_time(data, t[late_rows].max())],
            "earlier_range": [fmt_time(data, t[earlier].min()), fmt_time(data, boundary)],
            "per_group_violations": per_group,
        })
        if before:
            names = "/".join(PART_NAMES[p] for p in present[:i])
            findings.append(order_finding(data, PART_NAMES[late], names, before, n_late, boundary, per_group, details))
    findings += _gap(data, present, details)
    return findings


def order_finding(data: AuditData, late: str, earlier: str, before: int, n_late: int, boundary: float,
                  per_group: int | None, details: dict[str, Any]) -> Finding:
    """The ``temporal`` finding for ``before`` of the ``n_late`` rows of part ``late`` that precede the latest
    row (``boundary``) of the parts ``earlier`` (``"train/val"``); ``per_group``: those that precede their
    own group's earlier rows (None without groups). ``data`` names the time and group columns; the
    in-memory and out-of-core audits both state it so.

    >>> from cleanfit.auditing.inputs import AuditData
    >>> shape = AuditData(X=None, features=[], time_name="day")
    >>> order_finding(shape, "test", "train", 3, 10, 41.0, None, {}).message.split(":")[0]
    "3 test rows (30.0%) are earlier than the latest train row (41) in 'day'"
    """
    share = before / n_late
    what = (f"{plural(before, late + ' row')} ({share:.1%}) are earlier than the latest {earlier} "
            f"row ({fmt_time(data, boundary)}) in {data.time_name!r}: the model trains on the future of "
            "the rows it is scored on.")
    if per_group is not None and per_group == 0:
        return Finding("temporal", "warning", (
            f"{what} Within each {data.group_name!r} group the order holds, but the model still "
            "learns from other groups' later rows; if that future is not available at prediction "
            "time, split with split(by='time')."), details)
    sev = "critical" if share > CRITICAL_SHARE or (per_group or 0) > 0 else "warning"
    extra = f" Within {data.group_name!r} groups: {plural(per_group, 'row')} precede their own group's train rows." if per_group else ""
    return Finding("temporal", sev, f"{what}{extra} Split with split(by='time') so train < val < test in time.", details)


def _per_group_violations(data: AuditData, earlier: np.ndarray, late_rows: np.ndarray) -> int:
    """Held-out rows earlier than the latest earlier-part row of their own group."""
    assert data.groups is not None and data.time is not None
    frame = pd.DataFrame({"g": data.groups[earlier], "t": data.time[earlier]})
    last = frame.groupby("g", sort=False)["t"].max()
    g_late = data.groups[late_rows]
    bound = pd.Series(g_late).map(last).to_numpy(dtype=np.float64)
    return int(np.sum(data.time[late_rows] < bound))


def _gap(data: AuditData, present: list[int], details: dict) -> list[Finding]:
    """A gap the split promised (``splits.gap`` rows, ``splits.gap_time``) that the rows do not keep."""
    gap_rows = int(getattr(data.splits, "gap", 0) or 0)
    gap_time = getattr(data.splits, "gap_time", None)
    if not gap_rows and gap_time is None:
        return []
    assert data.time is not None and data.part is not None
    order = np.argsort(data.time, kind="stable")
    position = np.empty(data.n, dtype=np.int64)
    position[order] = np.arange(data.n)
    findings = []
    for early, late in zip(present, present[1:]):
        e, lt = data.part == early, data.part == late
        rows_between = int(position[lt].min() - position[e].max() - 1)
        time_between = float(data.time[lt].min() - data.time[e].max())
        details.setdefault("gaps", []).append({"parts": f"{PART_NAMES[early]}->{PART_NAMES[late]}",
                                               "rows_between": rows_between, "time_between": time_between})
        if gap_rows and rows_between < gap_rows:
            findings.append(Finding("temporal", "warning", (
                f"The split asked for a gap of {gap_rows} rows between {PART_NAMES[early]} and "
                f"{PART_NAMES[late]}, but only {rows_between} rows lie between them in time order. Rows "
                "near the boundary share information (lagged features, overlapping windows); rebuild the "
                f"split with split(by='time', gap={gap_rows})."), details))
        if gap_time is not None:
            wanted = pd.Timedelta(gap_time).value if data.time_is_datetime else float(gap_time)
            if time_between < wanted:
                findings.append(Finding("temporal", "warning", (
                    f"The split asked for a time gap of {gap_time} between {PART_NAMES[early]} and "
                    f"{PART_NAMES[late]}, but the parts are only {_fmt_delta(data, time_between)} apart. "
                    "Rebuild the split with split(by='time', gap_time=...)."), details))
    return findings


def _fmt_delta(data: AuditData, value: float) -> str:
    return str(pd.Timedelta(int(value))) if data.time_is_datetime else f"{value:g}"
