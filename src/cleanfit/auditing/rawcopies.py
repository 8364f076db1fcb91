"""``near-duplicates`` on the raw scale: copies up to rounding or up to one grey level.

Amounts re-exported to whole units, or an image with a few pixels moved by one grey level, sit far
from their original on a standardised scale (a column whose spread is 0.8 moves by up to 0.6 standard
deviations when rounded), but on the raw scale they are within one unit in every column, and exact in
the others. Natural pairs that close are rare wherever some columns span many units (an area, a price,
a pixel's 0-16 range); where they are not rare (every column spans less than a unit), the rate of
natural pairs says so and nothing is reported.

A held-out row is a raw copy of a train row when every numeric column differs by at most
:data:`UNIT` (in its own units), the other columns are equal, and the rows are not exact copies.

The search is one pass over the rows, hashed at each column's coarse raw resolution: a column of
fractional values rounded to whole units (so an amount and its rounded copy hash alike), a column of
whole numbers (pixels, counts) cut into bins of :data:`GREY_BIN` levels at a random offset, in
:data:`TABLES` tables (a pixel moved by one level stays in its bin with probability 2/3 in each). Rows
sharing a bucket are compared on the raw values. How many held-out rows would have such a partner by
chance is the rate of train rows that have one among the other train rows, found by the same search
(at least one such pair, so a small table is not judged on a rate of 0); the count seen is judged by a
Poisson tail. Buckets too crowded to compare (more than :data:`PAIR_BUDGET` pairs in all, smallest
buckets first) are left out of both counts, and the finding (or an ``info`` one) says how many rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from cleanfit.auditing.inputs import PART_NAMES, TRAIN, AuditData, numeric_columns, plural
from cleanfit.auditing.overlap import Overlap, combine, hash_rows
from cleanfit.data.rowsplit import splitmix64
from cleanfit.findings import Finding

WARNING_P = 0.01  # a warning below this Poisson p-value (and 2 rows at least); critical as the exact checks are
UNIT = 1.0  # the largest difference, in a column's own units, between a row and its raw copy
GREY_BIN = 3  # whole-number columns are hashed in bins of this many levels
TABLES = 8  # ... at this many random offsets (one table when no column holds whole numbers)
PAIR_BUDGET = 5_000_000  # row pairs compared at most (the most crowded buckets are left out, and said)
_CHUNK = 1 << 16
_SAMPLE = 20_000


def check_raw_copies(data: AuditData) -> list[Finding]:
    """The raw-scale ``near-duplicates`` finding: held-out rows with raw copies in train far above chance,
    or (``info``) how many rows the search could not compare."""
    assert data.part is not None
    cols = [c for c in numeric_columns(data) if data.X[c].dtype.kind != "b"]
    train = data.rows(TRAIN)
    late_parts = data.later_parts()
    if not cols or len(train) < 2 or not late_parts:
        return []
    pairs, skipped = _candidate_pairs(data, cols)
    i, j = _verified(data, cols, pairs)
    part = data.part
    # pairs are unordered: a held-out row with a train partner either way round
    held_i, held_j = np.isin(part[i], late_parts) & (part[j] == TRAIN), np.isin(part[j], late_parts) & (part[i] == TRAIN)
    copied = np.zeros(data.n, dtype=bool)
    copied[i[held_i]] = copied[j[held_j]] = True
    natural = np.zeros(data.n, dtype=bool)
    both_train = (part[i] == TRAIN) & (part[j] == TRAIN)
    natural[i[both_train]] = natural[j[both_train]] = True
    compared_train = len(train) - int(np.sum(skipped & (part == TRAIN)))
    # at least one natural pair: none seen among m rows bounds the rate near 1/m, not 0
    natural_rate = max(float(natural.sum()), 1.0) / max(compared_train, 1)
    overlaps = []
    for late in late_parts:
        in_late = (part == late) & ~skipped
        obs = int(np.sum(copied & in_late))
        expected = natural_rate * float(in_late.sum())
        chance = float(stats.poisson.sf(obs - 1, expected)) if obs else 1.0
        overlaps.append(Overlap(PART_NAMES[TRAIN], PART_NAMES[late], obs, expected, chance, int(np.sum(part == late))))
    if data.cache.get("impact") and copied.any():  # held-out rows with a raw copy in train, for audit(impact=True)
        flags = data.cache.setdefault("copied_rows", {}).setdefault("near-duplicates", np.zeros(data.n, dtype=bool))
        flags |= copied
    not_compared = int(np.sum(skipped & np.isin(part, late_parts)))
    return _finding(overlaps, cols, natural_rate, not_compared)


def _resolutions(data: AuditData, cols: list[Any]) -> np.ndarray:
    """Per column: True where it holds whole numbers only (pixels, counts: binned by grey levels), False
    where it holds fractions (amounts: rounded to whole units). Read from a row sample."""
    rows = np.sort(np.random.default_rng(data.seed + 29).choice(data.n, min(data.n, _SAMPLE), replace=False))
    sample = data.X.iloc[rows][cols].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return np.all(np.isnan(sample) | (sample == np.round(sample)), axis=0)


def _keys(data: AuditData, cols: list[Any]) -> np.ndarray:
    """``(tables, n)`` uint64 bucket keys: rows at each column's coarse raw resolution, other columns exact."""
    whole = _resolutions(data, cols)
    tables = TABLES if whole.any() else 1
    offsets = np.random.default_rng(data.seed + 31).uniform(0, 1, size=(tables, int(whole.sum())))  # in bins
    other = [c for c in data.features if c not in set(cols)]
    base = hash_rows(data.X, other) if other else None
    positions = [data.X.columns.get_loc(c) for c in cols]
    keys = np.empty((tables, data.n), dtype=np.uint64)
    for start in range(0, data.n, _CHUNK):
        stop = min(start + _CHUNK, data.n)
        block = data.X.iloc[start:stop, positions].to_numpy(dtype=np.float64, na_value=np.nan)
        fine = None if whole.all() else _hash_matrix(np.round(block[:, ~whole]))
        if base is not None:
            fine = base[start:stop] if fine is None else combine(base[start:stop], fine)
        levels = block[:, whole] / GREY_BIN
        for t in range(tables):
            h = fine
            if whole.any():
                h = combine(h, _hash_matrix(np.floor(levels + offsets[t])))
            assert h is not None
            keys[t, start:stop] = h
    return keys


def _hash_matrix(bins: np.ndarray) -> np.ndarray:
    """One uint64 per row of a matrix of whole-number bins: a random odd weight per column, the weighted sum
    modulo 2**64, mixed (distinct rows collide with probability ~2**-64). A missing, infinite or huge value
    casts to one code for all of them: such rows may share a bucket, and the raw comparison tells them apart."""
    weights = np.random.default_rng(20240614).integers(0, 2**63, size=bins.shape[1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore", invalid="ignore"):
        codes = bins.astype(np.int64).view(np.uint64)
        return splitmix64((codes * weights).sum(axis=1, dtype=np.uint64))


def _candidate_pairs(data: AuditData, cols: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(pairs, skipped)``: row pairs ``(2, k)`` that share a bucket in some table (each pair once), and a
    row mask of those no table could search: their bucket was too crowded for :data:`PAIR_BUDGET` in each."""
    keys = _keys(data, cols)
    found, crowded = [], np.ones(data.n, dtype=bool)
    budget = PAIR_BUDGET // len(keys)
    for key in keys:
        order = np.argsort(key, kind="stable")
        sk = key[order]
        starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
        sizes = np.diff(np.r_[starts, len(sk)])
        shared = sizes > 1
        starts, sizes = starts[shared], sizes[shared]
        by_size = np.argsort(sizes, kind="stable")
        cost = np.cumsum(sizes[by_size].astype(np.float64) * (sizes[by_size] - 1) / 2)
        keep = np.zeros(len(sizes), dtype=bool)
        keep[by_size[cost <= budget]] = True
        searched = np.ones(data.n, dtype=bool)
        for s, z in zip(starts[~keep], sizes[~keep]):
            searched[order[s:s + z]] = False
        crowded &= ~searched
        found.append(_pairs_within(order, starts[keep], sizes[keep]))
    pairs = np.concatenate(found, axis=1) if found else np.empty((2, 0), dtype=np.int64)
    pairs = np.sort(pairs, axis=0)
    if pairs.shape[1]:
        pairs = np.unique(pairs, axis=1)
    return pairs, crowded


def _pairs_within(order: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """All pairs of rows within each bucket (``order[start:start + size]``), as ``(2, k)`` row ids."""
    out = []
    members = np.repeat(starts, sizes) + _ranks(sizes)  # positions in ``order`` of every bucket member
    ends = np.repeat(starts + sizes, sizes)
    for d in range(1, int(sizes.max()) if len(sizes) else 1):
        ok = members + d < ends
        a = members[ok]
        out.append(np.stack([order[a], order[a + d]]))
        members, ends = a, ends[ok]
    return np.concatenate(out, axis=1) if out else np.empty((2, 0), dtype=np.int64)


def _ranks(sizes: np.ndarray) -> np.ndarray:
    """``0 .. size - 1`` for each size, concatenated."""
    total = int(sizes.sum())
    return np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _verified(data: AuditData, cols: list[Any], pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs within :data:`UNIT` in every column and not equal in all of them (raw copies)."""
    if not pairs.shape[1]:
        return pairs[0], pairs[1]
    rows = np.unique(pairs)
    values = data.X.iloc[rows][cols].to_numpy(dtype=np.float64, na_value=np.nan)
    a_at, b_at = np.searchsorted(rows, pairs[0]), np.searchsorted(rows, pairs[1])
    keep = np.zeros(pairs.shape[1], dtype=bool)
    step = max(1, 4_000_000 // max(1, len(cols)))
    for s in range(0, len(keep), step):
        a, b = values[a_at[s:s + step]], values[b_at[s:s + step]]
        with np.errstate(invalid="ignore"):
            diff = np.abs(a - b)
        missing_a, missing_b = np.isnan(a), np.isnan(b)
        diff[(a == b) | (missing_a & missing_b)] = 0.0  # missing matches missing only, an infinity itself
        diff[missing_a ^ missing_b] = np.inf
        keep[s:s + step] = np.all(diff <= UNIT, axis=1) & ~np.all(diff == 0.0, axis=1)
    return pairs[0][keep], pairs[1][keep]


def _finding(overlaps: list[Overlap], cols: list[Any], natural_rate: float, not_compared: int) -> list[Finding]:
    shared = [o for o in overlaps if o.observed >= 2 and o.p_value < WARNING_P]
    skipped = (f" {plural(not_compared, 'held-out row')} in buckets too crowded to compare were not searched."
               if not_compared else "")
    details = {"scale": "raw", "max_difference": UNIT, "overlaps": [o.as_dict() for o in overlaps],
               "columns": [str(c) for c in cols], "natural_rate": round(natural_rate, 6),
               "held_out_rows_not_compared": not_compared}
    if not shared:
        if not not_compared:
            return []
        held = sum(o.late_rows for o in overlaps)
        return [Finding("near-duplicates", "info", (
            f"The raw-scale search for copies up to rounding or a grey level did not compare {not_compared:,} of "
            f"{held:,} held-out rows: each shares a bucket (rows equal at whole-unit resolution) with so many others "
            f"that comparing them all exceeds {PAIR_BUDGET:,} pairs. Rows that alike repeat naturally; the "
            "standardised near-duplicate search still covers them."), details)]
    pairs = "; ".join(f"{plural(o.observed, o.late + ' row')} within {UNIT:g} unit of a {o.early} row in every "
                      f"column (chance: {o.expected:.1f})" for o in shared)
    severity = "critical" if any(o.critical for o in shared) else "warning"
    return [Finding("near-duplicates", severity, (
        f"Copies up to rounding across the split: {pairs}. On the raw scale these rows differ from a train row "
        f"by at most {UNIT:g} in every column ({natural_rate:.2%} of train rows have a natural pair that close): "
        "amounts re-exported in other units, or images moved by a grey level. Remove them or split by the key "
        f"that ties them together (split(by='group')).{skipped}"), details)]
