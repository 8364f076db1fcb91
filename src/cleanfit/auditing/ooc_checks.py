"""The exact checks of the out-of-core audit, as DuckDB SQL over the table ``audit`` (see ``ooc_load``).

Each function reduces the table to a few numbers in SQL and states the finding with the in-memory check's
own thresholds, statistics (``overlap.Overlap``, ``chance_from_multiplicities``) and wording, so a table
audited out of core gets the same finding ids, messages and severities as in memory (the tests compare
them on tables that fit both ways). ``duplicates`` ``group`` ``temporal`` ``label-order`` (classes) and the
label part of ``split-shift`` (classes) are exact; the rest run on the row sample (``outofcore``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cleanfit.auditing import distribution, groups, temporal
from cleanfit.auditing.duplicates import exact_finding, natural_collisions
from cleanfit.auditing.inputs import PART_NAMES, TRAIN, AuditData
from cleanfit.auditing.ooc_load import BATCH, Order
from cleanfit.auditing.overlap import Overlap, chance_from_multiplicities, p_value
from cleanfit.auditing.twins import rare_twins_of_sample
from cleanfit.findings import Finding


def part_sizes(con: Any) -> list[int]:
    """Rows of train, val and test."""
    got = dict(con.execute("SELECT part, count(*) FROM audit GROUP BY part").fetchall())
    return [int(got.get(p, 0)) for p in (0, 1, 2)]


def _pairs(sizes: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in ((0, 1), (0, 2), (1, 2)) if sizes[a] and sizes[b]]


def duplicates(con: Any, sizes: list[int], sample: AuditData, has_y: bool) -> list[Finding]:
    """Check ``duplicates``: one GROUP BY over the exact-duplicate key, then the chance baseline."""
    con.execute("""CREATE TEMP TABLE dup AS SELECT key, count(*) FILTER (part = 0) AS c0,
                   count(*) FILTER (part = 1) AS c1, count(*) FILTER (part = 2) AS c2
                   FROM audit GROUP BY key HAVING count(*) > 1""")
    observed = con.execute("""SELECT coalesce(sum(c1) FILTER (c0 > 0), 0), coalesce(sum(c2) FILTER (c0 > 0), 0),
                              coalesce(sum(c2) FILTER (c1 > 0), 0) FROM dup""").fetchone()
    hist = np.array(con.execute("SELECT c0 + c1 + c2 AS m, count(*) FROM dup GROUP BY m").fetchall(), dtype=np.float64).reshape(-1, 2)
    n = sum(sizes)
    overlaps, conflicts = [], 0
    for early, late in _pairs(sizes):
        obs = int(observed[{(0, 1): 0, (0, 2): 1, (1, 2): 2}[(early, late)]])
        mean, var = chance_from_multiplicities(hist[:, 0], hist[:, 1], sizes[early] / n, sizes[late] / n)
        overlaps.append(Overlap(PART_NAMES[early], PART_NAMES[late], obs, mean, p_value(obs, mean, var), sizes[late]))
        if has_y and early == TRAIN and obs:
            conflicts += int(con.execute(f"""SELECT count(*) FROM audit a JOIN dup USING (key)
                WHERE a.part = {late} AND dup.c0 > 0 AND a.lkey NOT IN (SELECT lkey FROM audit WHERE part = 0)""").fetchone()[0])
    con.execute("DROP TABLE dup")
    pairs_all = float(np.sum(hist[:, 1] * hist[:, 0] * (hist[:, 0] - 1) / 2))
    return exact_finding(overlaps, conflicts, lambda: natural_collisions(sample, n, pairs_all),
                         lambda: rare_twins_of_sample(sample, sizes, _label_overlaps(con, sizes)))


def _label_overlaps(con: Any, sizes: list[int]) -> dict[tuple[int, int], int]:
    """Per pair of parts: held-out rows equal to an earlier part's row in every feature and the label."""
    got = con.execute("""WITH d AS (SELECT count(*) FILTER (part = 0) AS c0, count(*) FILTER (part = 1) AS c1,
                         count(*) FILTER (part = 2) AS c2 FROM audit GROUP BY lkey HAVING count(*) > 1)
                         SELECT coalesce(sum(c1) FILTER (c0 > 0), 0), coalesce(sum(c2) FILTER (c0 > 0), 0),
                         coalesce(sum(c2) FILTER (c1 > 0), 0) FROM d""").fetchall()[0]  # all: no open result
    return {pair: int(got[{(0, 1): 0, (0, 2): 1, (1, 2): 2}[pair]]) for pair in _pairs(sizes)}


def group(con: Any, group_name: str) -> list[Finding]:
    """Check ``group`` with a group column: groups found in more than one part."""
    n_codes, n_shared, r0, r1, r2 = con.execute("""
        WITH per AS (SELECT g, count(*) FILTER (part = 0) AS c0, count(*) FILTER (part = 1) AS c1,
                     count(*) FILTER (part = 2) AS c2 FROM audit WHERE g IS NOT NULL GROUP BY g)
        SELECT count(*), count(*) FILTER (s), coalesce(sum(c0) FILTER (s), 0), coalesce(sum(c1) FILTER (s), 0),
               coalesce(sum(c2) FILTER (s), 0)
        FROM (SELECT *, (c0 > 0)::INT + (c1 > 0)::INT + (c2 > 0)::INT > 1 AS s FROM per)""").fetchone()
    if not n_shared:
        return []
    rows, n_late = int(r1 + r2), int(con.execute("SELECT count(*) FROM audit WHERE part > 0").fetchone()[0])
    share = rows / max(n_late, 1)
    details: dict[str, Any] = {"group_column": group_name, "shared_groups": int(n_shared), "groups": int(n_codes),
                               "held_out_rows_in_shared_groups": rows,
                               "rows_per_part": {"train": int(r0), "val": int(r1), "test": int(r2)}}
    return [groups.shared_groups_finding(group_name, int(n_shared), rows, share, details)]


def temporal_check(con: Any, sizes: list[int], shape: AuditData) -> list[Finding]:
    """Check ``temporal``: held-out rows earlier than the latest row of an earlier part (``shape`` carries the
    time column's name and format, and the group column's)."""
    fmt = lambda v: temporal.fmt_time(shape, v)  # noqa: E731 - the in-memory check's own formatting
    present = [p for p in (0, 1, 2) if sizes[p]]
    findings: list[Finding] = []
    details: dict[str, Any] = {"time_column": shape.time_name, "parts": []}
    for i, late in enumerate(present[1:], start=1):
        earlier = ", ".join(str(p) for p in present[:i])
        lo, boundary = con.execute(f"SELECT min(t), max(t) FROM audit WHERE part IN ({earlier})").fetchone()
        before, n_late, l_lo, l_hi = con.execute(
            f"SELECT count(*) FILTER (t < {boundary!r}), count(*), min(t), max(t) FROM audit WHERE part = {late}").fetchone()
        per_group = None
        if shape.group_name is not None:
            per_group = int(con.execute(f"""WITH last AS (SELECT g, max(t) AS bound FROM audit WHERE part IN ({earlier}) GROUP BY g)
                SELECT count(*) FROM audit a JOIN last USING (g) WHERE a.part = {late} AND a.t < last.bound""").fetchone()[0])
        details["parts"].append({"part": PART_NAMES[late], "rows_before_earlier_parts_end": int(before), "rows": int(n_late),
                                 "range": [fmt(l_lo), fmt(l_hi)], "earlier_range": [fmt(lo), fmt(boundary)],
                                 "per_group_violations": per_group})
        if before:
            names = "/".join(PART_NAMES[p] for p in present[:i])
            findings.append(temporal.order_finding(shape, PART_NAMES[late], names, int(before), int(n_late), boundary, per_group, details))
    return findings


def label_order(con: Any, order: Order, n: int, has_time: bool) -> list[Finding]:
    """Check ``label-order`` for classes, from the stored order seen in the pass."""
    counts = np.array([c for (c,) in con.execute("SELECT count(*) FROM audit GROUP BY y").fetchall()], dtype=np.float64)
    pure = order.pure_blocks / order.blocks if order.blocks else float(order.changes == 0)  # < BATCH rows: one block
    return distribution.blocked_finding(counts, order.changes, pure, BATCH, has_time and order.time_back == 0)


def time_order(order: Order, time_name: str | None) -> list[Finding]:
    """The time half of ``label-order``: rows not in time order (the audit always has a split here)."""
    if time_name is None or not (order.time_back and order.time_forward):
        return []
    return [distribution.time_order_finding(time_name, order.time_back, split=True)]


def label_shift(con: Any, sizes: list[int], drift: bool) -> list[Finding]:
    """The label part of ``split-shift`` for classes: labels train never shows, and a different label mix."""
    table = pd.DataFrame(con.execute("SELECT y, count(*) FILTER (part = 0), count(*) FILTER (part = 1), "
                                     "count(*) FILTER (part = 2) FROM audit GROUP BY y ORDER BY min(row)").fetchall())
    classes, per_part = table[0].to_numpy(), table[[1, 2, 3]].to_numpy(dtype=np.int64)
    findings = []
    for p in (1, 2):
        if sizes[p]:
            findings += distribution.class_shift_findings(PART_NAMES[p], classes, per_part[:, 0], per_part[:, p], drift)
    return findings
