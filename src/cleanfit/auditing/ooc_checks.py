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
from scipy import stats

from cleanfit.auditing import distribution, groups, temporal
from cleanfit.auditing.inputs import PART_NAMES, TRAIN, AuditData, plural
from cleanfit.auditing.ooc_load import BATCH, Order
from cleanfit.auditing.overlap import Overlap, chance_from_multiplicities, p_value
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
    shared = [o for o in overlaps if o.observed]
    if not shared:
        return []
    worst = max(shared, key=lambda o: (o.critical, o.significant, o.excess))
    details: dict[str, Any] = {"overlaps": [o.as_dict() for o in overlaps], "conflicting_labels": conflicts}
    pairs = "; ".join(f"{plural(o.observed, o.late + ' row')} also in {o.early} (chance: {o.expected:.1f})" for o in shared)
    where = f"exact duplicate rows across the split: {pairs}"
    if any(o.critical for o in shared) or (conflicts and worst.significant):
        extra = f" {plural(conflicts, 'held-out row')} repeat a train row's features with a different label." if conflicts else ""
        return [Finding("duplicates", "critical", (
            f"{where.capitalize()}, far above what a random split gives.{extra} The model is scored on rows it "
            "trained on; drop duplicates before splitting (e.g. X.drop_duplicates()) or split by a key "
            "that keeps copies together (split(by='group'))."), details)]
    if any(o.significant for o in shared):
        return [Finding("duplicates", "warning", (
            f"{where.capitalize()}: above chance but a small share of the held-out rows. Drop duplicates "
            "before splitting so held-out scores are not inflated."), details)]
    pairs_all = float(np.sum(hist[:, 1] * hist[:, 0] * (hist[:, 0] - 1) / 2))
    details["natural_collisions"] = natural = _natural(sample, n, pairs_all)
    if not natural:
        observed_all, expected = sum(o.observed for o in shared), sum(o.expected for o in shared)
        how_many = "About as many as" if observed_all <= 1.5 * expected + 1 else "More than"
        return [Finding("duplicates", "warning", (
            f"{where.capitalize()}. {how_many} a random split of this data gives, and these rows are copies "
            "(the columns are too fine-grained to collide by chance), so the model is scored on examples it "
            "trained on. Drop duplicates before splitting (X.drop_duplicates())."), details)]
    if conflicts:
        return [Finding("duplicates", "warning", (
            f"{where.capitalize()}, about what chance gives for data with this few distinct rows, but "
            f"{plural(conflicts, 'held-out row')} repeat a train row's features with a different label: "
            "the features cannot separate them; check for label noise or a missing feature."), details)]
    return [Finding("duplicates", "info", (
        f"{where.capitalize()}: as many as a random split of this data gives by chance (its values are "
        "coarse, so rows repeat naturally); not leakage by itself."), details)]


def _natural(sample: AuditData, n: int, pairs: float) -> bool:
    """duplicates._natural with the pair count from SQL and the column collision rates from the row sample."""
    m = min(sample.n, 20_000)
    rows = np.sort(np.random.default_rng(sample.seed).choice(sample.n, m, replace=False))
    frame = sample.X.iloc[rows]
    q = 1.0
    for c in sample.features:
        counts = frame[c].value_counts(dropna=False).to_numpy().astype(np.float64)
        q *= float(np.sum(counts * (counts - 1))) / (m * (m - 1))
        if q == 0.0:
            return False
    return n * (n - 1) / 2 * q >= 0.1 * pairs


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
    sev = "critical" if share > groups.CRITICAL_SHARE else "warning"
    return [Finding("group", sev, (
        f"{plural(int(n_shared), 'group')} of {int(n_codes):,} in {group_name!r} "
        f"{'appears' if int(n_shared) == 1 else 'appear'} in more than one "
        f"part; {plural(rows, 'held-out row')} ({share:.1%} of val+test) "
        f"{'belongs' if rows == 1 else 'belong'} to a group the model "
        "trains on, so held-out scores measure memorised entities. Split with "
        f"split(by='group', groups=...) so each value of {group_name!r} lands in one part."), details)]


def temporal_check(con: Any, sizes: list[int], shape: AuditData) -> list[Finding]:
    """Check ``temporal``: held-out rows earlier than the latest row of an earlier part (``shape`` carries the
    time column's name and format, and the group column's)."""
    fmt = lambda v: temporal._fmt(shape, v)  # noqa: E731 - the in-memory check's own formatting
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
        if not before:
            continue
        share = before / n_late
        names = "/".join(PART_NAMES[p] for p in present[:i])
        what = (f"{plural(int(before), PART_NAMES[late] + ' row')} ({share:.1%}) are earlier than the latest {names} "
                f"row ({fmt(boundary)}) in {shape.time_name!r}: the model trains on the future of "
                "the rows it is scored on.")
        if per_group is not None and per_group == 0:
            findings.append(Finding("temporal", "warning", (
                f"{what} Within each {shape.group_name!r} group the order holds, but the model still "
                "learns from other groups' later rows; if that future is not available at prediction "
                "time, split with split(by='time')."), details))
        else:
            sev = "critical" if share > temporal.CRITICAL_SHARE or (per_group or 0) > 0 else "warning"
            extra = f" Within {shape.group_name!r} groups: {plural(per_group, 'row')} precede their own group's train rows." if per_group else ""
            findings.append(Finding("temporal", sev, f"{what}{extra} Split with split(by='time') so train < val < test in time.", details))
    return findings


def label_order(con: Any, order: Order, n: int, has_time: bool) -> list[Finding]:
    """Check ``label-order`` for classes, from the stored order seen in the pass."""
    counts = np.array([c for (c,) in con.execute("SELECT count(*) FROM audit GROUP BY y").fetchall()], dtype=np.float64)
    expected = (n - 1) * (1 - float(np.sum(counts * (counts - 1))) / (n * (n - 1)))
    ratio = order.changes / expected if expected else 1.0
    if ratio > distribution._RUNS_RATIO:
        return []
    in_time_order = has_time and order.time_back == 0
    pure = order.pure_blocks / order.blocks if order.blocks else float(order.changes == 0)  # < BATCH rows: one block
    pure_chance = float(np.sum((counts / n) ** BATCH))
    how = "sorted by label" if order.changes == len(counts) - 1 else "blocked by label"
    details = {"label_changes": order.changes, "expected_if_shuffled": round(expected, 1),
               "single_class_batches": round(pure, 4), "batch_size": BATCH}
    advice = ("The rows are in time order, so the labels follow time: keep the split by time, and "
              "shuffle=True in Batches for training." if in_time_order else
              "Keep shuffle=True in Batches and never split by position (use split(by='stratify')).")
    times = "time" if order.changes == 1 else "times"
    return [Finding("label-order", "info" if in_time_order else "warning", (
        f"Rows are {how}: the label changes {order.changes:,} {times} between neighbouring rows where a "
        f"shuffled order gives about {expected:,.0f}; {pure:.0%} of batches of {BATCH} rows in stored "
        f"order hold a single class (shuffled: {pure_chance:.0%}). {advice}"), details)]


def time_order(order: Order, time_name: str | None) -> list[Finding]:
    """The time half of ``label-order``: rows not in time order (the audit always has a split here)."""
    if time_name is None or not (order.time_back and order.time_forward):
        return []
    return [Finding("label-order", "info", (
        f"Rows are not in {time_name!r} order ({plural(order.time_back, 'step')} go back in time). A split "
        "by position or a loader with shuffle=False would mix past and future; for a time series, sort "
        "by time and keep train before val before test."),
        {"time_column": time_name, "backward_steps": order.time_back})]


def label_shift(con: Any, sizes: list[int], drift: bool) -> list[Finding]:
    """The label part of ``split-shift`` for classes: labels train never shows, and a different label mix."""
    table = pd.DataFrame(con.execute("SELECT y, count(*) FILTER (part = 0), count(*) FILTER (part = 1), "
                                     "count(*) FILTER (part = 2) FROM audit GROUP BY y ORDER BY min(row)").fetchall())
    classes, per_part = table[0].to_numpy(), table[[1, 2, 3]].to_numpy(dtype=np.int64)
    train_counts = per_part[:, 0]
    findings = []
    for p in (1, 2):
        if not sizes[p]:
            continue
        counts = per_part[:, p]
        unseen = (train_counts == 0) & (counts > 0)
        if unseen.any():
            n_unseen = int(counts[unseen].sum())
            share = n_unseen / sizes[p]
            labels = [str(v) for v in classes[unseen][:10]]
            fix = ("New labels appear over time: gather train examples of them, or move the time "
                   "boundary so train covers them." if drift else
                   "Split with split(by='stratify', y=...) or gather train examples of these labels.")
            findings.append(Finding("split-shift", "critical" if share >= distribution._UNSEEN_CRITICAL else "warning", (
                f"{plural(n_unseen, PART_NAMES[p] + ' row')} ({share:.1%}) have labels train never "
                f"shows ({', '.join(labels)}): the model cannot predict them. {fix}"),
                {"part": PART_NAMES[p], "unseen_labels": labels, "rows": n_unseen}))
        tv = 0.5 * float(np.abs(counts / counts.sum() - train_counts / train_counts.sum()).sum())
        seen = (train_counts + counts) > 0
        pval = float(stats.chi2_contingency(np.vstack([train_counts[seen], counts[seen]]))[1]) if seen.sum() > 1 else 1.0
        if tv >= distribution._SHIFT_TV and pval < distribution._SHIFT_P:
            fix = distribution._DRIFT if drift else "Split with split(by='stratify', y=...) unless the shift is intended."
            findings.append(Finding("split-shift", "info" if drift else "warning", (
                f"The label mix of {PART_NAMES[p]} differs from train's (total variation {tv:.2f}, "
                f"chi-square p = {pval:.1g}): scores there will not reflect the train distribution. "
                f"{fix}"),
                {"part": PART_NAMES[p], "total_variation": round(tv, 4), "p_value": pval}))
    return findings
