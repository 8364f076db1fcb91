"""Check ``group``: one entity (patient, user, device) on both sides of the split.

With ``groups`` given, every group found in more than one part is a leak: the model learns the
entity and is scored on it again. Without ``groups``, columns that look like entity keys (integer
or string values, many of them, each repeated) are reported, with how many of their values straddle
the split when there is one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cleanfit.auditing.inputs import PART_NAMES, AuditData, plural
from cleanfit.findings import Finding

# held-out rows in shared groups above this share of the held-out part: critical
CRITICAL_SHARE = 0.01
# an entity-key-like column: at least this many distinct values, each repeated this often on average
_KEY_MIN_VALUES = 20
_KEY_MIN_REPEATS = 2.0
# ... whose values straddle the split this often (share of values seen in two parts)
_KEY_STRADDLE = 0.2


def _presence(codes: np.ndarray, part: np.ndarray, n_codes: int) -> np.ndarray:
    """``(n_codes, 3)`` row counts of each code in train/val/test."""
    assigned = (part >= 0) & (codes >= 0)
    flat = codes[assigned] * 3 + part[assigned]
    return np.bincount(flat, minlength=n_codes * 3).reshape(n_codes, 3)


def check_group(data: AuditData) -> list[Finding]:
    if data.groups is not None:
        return _given_groups(data) if data.part is not None else []
    return _key_like(data)


def _given_groups(data: AuditData) -> list[Finding]:
    assert data.groups is not None and data.part is not None
    n_codes = int(data.groups.max()) + 1
    counts = _presence(data.groups, data.part, n_codes)
    shared = (counts > 0).sum(axis=1) > 1
    if not shared.any():
        return []
    in_shared = shared[np.maximum(data.groups, 0)] & (data.groups >= 0)
    late = data.part > 0
    rows = int(np.sum(in_shared & late))
    n_late = int(late.sum())
    share = rows / max(n_late, 1)
    per_part = {PART_NAMES[p]: int(np.sum(in_shared & (data.part == p))) for p in (0, 1, 2)}
    details: dict[str, Any] = {"group_column": data.group_name, "shared_groups": int(shared.sum()),
                               "groups": n_codes, "held_out_rows_in_shared_groups": rows, "rows_per_part": per_part}
    return [shared_groups_finding(data.group_name, int(shared.sum()), rows, share, details)]


def shared_groups_finding(group_name: str | None, n_shared: int, rows: int, share: float, details: dict[str, Any]) -> Finding:
    """The ``group`` finding for ``n_shared`` groups of ``details["groups"]`` in column ``group_name`` that
    span parts, holding ``rows`` held-out rows (``share`` of val+test); the in-memory and out-of-core audits
    both state it so.

    >>> f = shared_groups_finding("user", 2, 7, 0.07, {"groups": 40})
    >>> f.severity, f.message.split(";")[0]
    ('critical', "2 groups of 40 in 'user' appear in more than one part")
    """
    sev = "critical" if share > CRITICAL_SHARE else "warning"
    n_codes = int(details["groups"])
    return Finding("group", sev, (
        f"{plural(n_shared, 'group')} of {n_codes:,} in {group_name!r} "
        f"{'appears' if n_shared == 1 else 'appear'} in more than one "
        f"part; {plural(rows, 'held-out row')} ({share:.1%} of val+test) "
        f"{'belongs' if rows == 1 else 'belong'} to a group the model "
        "trains on, so held-out scores measure memorised entities. Split with "
        f"split(by='group', groups=...) so each value of {group_name!r} lands in one part."), details)


def _key_like(data: AuditData) -> list[Finding]:
    skip = set(data.cache.get("ids", ()))
    findings = []
    for c in data.features:
        s = data.X[c]
        if c in skip or s.dtype.kind in "fbcMm":
            continue
        codes, uniques = pd.factorize(s)
        n_values = len(uniques)
        if n_values < _KEY_MIN_VALUES or data.n / n_values < _KEY_MIN_REPEATS:
            continue
        if n_values < 0.01 * data.n:  # a low-cardinality category, not an entity key
            continue
        details: dict[str, Any] = {"column": str(c), "distinct_values": n_values, "mean_rows_per_value": round(data.n / n_values, 2)}
        what = (f"Column {c!r} looks like an entity key ({n_values:,} distinct values, {data.n / n_values:.1f} "
                "rows each on average)")
        if data.part is None:
            findings.append(Finding("group", "warning", (
                f"{what}. If rows of one entity are related, pass groups={c!r} and split with "
                "split(by='group') so no entity is in both train and test."), details))
            continue
        counts = _presence(codes.astype(np.int64), data.part, n_values)
        straddle = float(np.mean((counts > 0).sum(axis=1) > 1))
        details["straddling_share"] = round(straddle, 4)
        if straddle >= _KEY_STRADDLE:
            findings.append(Finding("group", "warning", (
                f"{what}, and {straddle:.0%} of its values appear in more than one part. If rows of one "
                f"entity are related, pass groups={c!r} and split with split(by='group')."), details))
    return findings
