"""``audit(path, impact=True)`` out of core: :func:`~cleanfit.auditing.impact.measure_impact` on the row sample.

The quick model of the in-memory impact is fit and scored on the uniform row sample the model-based checks use
(its train rows, its test rows). Which sampled held-out rows have an exact copy (or their group) in train is
decided over *every* row, in SQL, so a copy whose train row is outside the sample still counts. Each measured
finding says so: ``details["impact"]["sample_rows"]`` and, in its text, "on a uniform sample of N of the table's M
rows".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cleanfit.auditing.impact import measure_impact
from cleanfit.auditing.inputs import AuditData
from cleanfit.findings import Finding


def _flags(con: Any, query: str) -> np.ndarray:
    return np.array([bool(v) for (v,) in con.execute(query).fetchall()], dtype=bool)


def measure(con: Any, data: AuditData, findings: list[Finding], *, n_rows: int, groups: str | None) -> None:
    """Put ``details["impact"]`` on the critical and warning findings, measured on the sample ``data``."""
    copied = data.cache.setdefault("copied_rows", {})
    copied["duplicates"] = _flags(con, """SELECT coalesce(part > 0 AND key IN (SELECT key FROM audit WHERE part = 0), false)
                                          FROM audit WHERE sampled ORDER BY row""")
    if groups is not None:
        copied["group"] = _flags(con, """SELECT coalesce(part > 0 AND g IN (SELECT g FROM audit WHERE part = 0 AND g IS NOT NULL),
                                         false) FROM audit WHERE sampled ORDER BY row""")
    measure_impact(data, findings)
    where = f"on a uniform sample of {data.n:,} of the table's {n_rows:,} rows"
    for f in findings:
        impact = f.details.get("impact")
        if not isinstance(impact, dict):
            continue
        impact["sample_rows"] = data.n
        if impact.get("with") is not None:
            impact["compared"] = f"{impact['compared']}, {where}"
        else:
            impact["note"] = f"{impact.get('note', 'not measured')} ({where})"
