"""``near-duplicates`` on the raw scale: copies up to rounding or up to one grey level.

Amounts re-exported to whole units, or an image with a few pixels moved by one grey level, sit far
from their original on a standardised scale (a column whose spread is 0.8 moves by up to 0.6 standard
deviations when rounded), but on the raw scale they are within one unit in every column, and exact in
the others. Natural pairs that close are rare wherever some columns span many units (an area, a price,
a pixel's 0-16 range); where they are not rare (every column spans less than a unit), the rate of
natural pairs says so and nothing is reported.

A held-out row is a raw copy of a train row when every numeric column differs by at most
:data:`UNIT` (in its own units), the other columns are equal, and the rows are not exact copies. How
many held-out rows would have such a partner by chance is the rate of train rows that have one among
the train rows (the nearest natural pair; a sample of them, and at least one such pair per sample so
a small table is not judged on a rate of 0); the count seen is judged by a Poisson tail.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from cleanfit.auditing.inputs import PART_NAMES, TRAIN, AuditData, numeric_columns, plural
from cleanfit.auditing.overlap import Overlap, hash_rows
from cleanfit.findings import Finding

WARNING_P = 0.01  # a warning below this Poisson p-value (and 2 rows at least); critical as the exact checks are
UNIT = 1.0  # the largest difference, in a column's own units, between a row and its raw copy
PAIR_BUDGET = 20_000_000  # held-out x train row pairs compared at most (larger tables: skipped, said in details)
_BASELINE_ROWS = 3000
_BLOCK = 4_000_000  # pair-columns per block


def _matrix(data: AuditData, cols: list[Any], rows: np.ndarray) -> np.ndarray:
    block = data.X.iloc[rows][cols].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(block), np.inf, block)  # missing matches missing only (inf - inf is nan, not <= UNIT)


def _has_partner(A: np.ndarray, a_key: np.ndarray, B: np.ndarray, b_key: np.ndarray) -> np.ndarray:
    """Per row of ``A``: whether some row of ``B`` is within :data:`UNIT` in every column, with equal
    other columns (``*_key``), and not an exact copy."""
    found = np.zeros(len(A), dtype=bool)
    if not len(A) or not len(B):
        return found
    step = max(1, _BLOCK // max(1, B.shape[0] * B.shape[1]))
    for start in range(0, len(A), step):
        a = A[start:start + step]
        with np.errstate(invalid="ignore"):
            diff = np.abs(a[:, None, :] - B[None, :, :])
            both_missing = np.isinf(a)[:, None, :] & np.isinf(B)[None, :, :]
            diff[both_missing] = 0.0
            close = np.all(diff <= UNIT, axis=2) & ~np.all(diff == 0.0, axis=2)
        close &= a_key[start:start + step, None] == b_key[None, :]
        found[start:start + step] = close.any(axis=1)
    return found


def check_raw_copies(data: AuditData) -> list[Finding]:
    """The raw-scale ``near-duplicates`` finding, if held-out rows have raw copies in train far above chance."""
    assert data.part is not None
    train = data.rows(TRAIN)
    late_parts = data.later_parts()
    held = np.flatnonzero(np.isin(data.part, late_parts))
    if len(held) * len(train) > PAIR_BUDGET:
        return []
    cols = [c for c in numeric_columns(data) if data.X[c].dtype.kind != "b" and data.X[c].nunique() > 1]
    if not cols:
        return []
    other = [c for c in data.features if c not in set(cols)]
    key = hash_rows(data.X, other) if other else np.zeros(data.n, dtype=np.uint64)
    T = _matrix(data, cols, train)
    copied = _has_partner(_matrix(data, cols, held), key[held], T, key[train])
    if not copied.any():
        return []
    base = np.sort(np.random.default_rng(data.seed + 23).choice(len(train), min(len(train), _BASELINE_ROWS), replace=False))
    natural = _has_partner(T[base], key[train][base], T, key[train])
    # at least one natural pair per baseline sample: no pair seen among m rows bounds the rate near 1/m, not 0
    natural_rate = max(float(natural.sum()), 1.0) / len(base) * (len(train) / max(len(train) - 1, 1))
    overlaps = []
    for late in late_parts:
        in_late = data.part[held] == late
        obs = int(np.sum(copied & in_late))
        expected = natural_rate * float(in_late.sum())
        chance = float(stats.poisson.sf(obs - 1, expected)) if obs else 1.0
        overlaps.append(Overlap(PART_NAMES[TRAIN], PART_NAMES[late], obs, expected, chance, int(in_late.sum())))
    if data.cache.get("impact"):  # held-out rows with a raw copy in train, for audit(impact=True)
        flags = data.cache.setdefault("copied_rows", {}).setdefault("near-duplicates", np.zeros(data.n, dtype=bool))
        flags[held[copied]] = True
    return _finding(overlaps, cols, natural_rate)


def _finding(overlaps: list[Overlap], cols: list[Any], natural_rate: float) -> list[Finding]:
    shared = [o for o in overlaps if o.observed >= 2 and o.p_value < WARNING_P]
    if not shared:
        return []
    details = {"scale": "raw", "max_difference": UNIT, "overlaps": [o.as_dict() for o in overlaps],
               "columns": [str(c) for c in cols], "natural_rate": round(natural_rate, 6)}
    pairs = "; ".join(f"{plural(o.observed, o.late + ' row')} within {UNIT:g} unit of a {o.early} row in every "
                      f"column (chance: {o.expected:.1f})" for o in shared)
    severity = "critical" if any(o.critical for o in shared) else "warning"
    return [Finding("near-duplicates", severity, (
        f"Copies up to rounding across the split: {pairs}. On the raw scale these rows differ from a train row "
        f"by at most {UNIT:g} in every column ({natural_rate:.2%} of train rows have a natural pair that close): "
        "amounts re-exported in other units, or images moved by a grey level. Remove them or split by the key "
        "that ties them together (split(by='group'))."), details)]
