"""Exact copies judged by the rarity of the values they share: records entered twice.

The ``duplicates`` check's first baseline re-splits the rows at random; it treats the copies as given,
so two copies straddle the split about as often as chance says and look natural. This module asks the
other question: how many pairs of rows, one in each part, would match on *every* column by chance?

A table's columns fall in two groups. **Rare** columns are those whose values seldom repeat (two rows of
a sample share a value less than :data:`RARE` of the time: amounts, measurements). The others, with the
label, are **coarse** (flags, bands, classes). Two rows of one part share all their rare values at the
rate ``q_rare`` = pairs within parts equal on every rare column / pairs within parts (copies that
straddle the split do not enter it); two rows share all their coarse values and the label at the rate
``q_coarse`` (a row sample). With the two groups independent, part ``a`` x part ``b`` gives

    expected = n_a * n_b * q_rare * q_coarse

pairs equal on everything by chance, and the rows seen are judged by a Poisson tail: a warning below
:data:`WARNING_P`; critical where, with at least one natural pair assumed in the rare columns
(``q_rare`` is then not 0 however few rows there are), the tail is below the exact check's
``P_VALUE`` and the excess is a share ``CRITICAL_SHARE`` of the held-out rows. Both the in-memory and
the out-of-core audit can compute it from counts alone (:func:`rare_twins`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cleanfit.auditing.inputs import PART_NAMES, AuditData
from cleanfit.auditing.overlap import CRITICAL_SHARE, P_VALUE, combine, hash_column, hash_rows, observed_overlap, part_pairs

RARE = 0.01  # a column is rare when two rows share a value less often than this
WARNING_P = 0.01
_SAMPLE = 20_000


@dataclass(frozen=True)
class RareTwins:
    """Held-out rows of ``late`` equal to a row of ``early`` on every column and the label, against chance."""

    early: str
    late: str
    observed: int
    expected: float  # pairs equal on everything by chance (q_rare as measured)
    expected_floor: float  # the same with at least one natural pair in the rare columns
    late_rows: int

    @property
    def p_value(self) -> float:
        return float(stats.poisson.sf(self.observed - 1, self.expected)) if self.observed else 1.0

    @property
    def p_floor(self) -> float:
        return float(stats.poisson.sf(self.observed - 1, self.expected_floor)) if self.observed else 1.0

    @property
    def significant(self) -> bool:
        return self.observed >= 1 and self.p_value < WARNING_P

    @property
    def critical(self) -> bool:
        excess = self.observed - self.expected_floor
        return self.p_floor < P_VALUE and excess >= max(1.0, CRITICAL_SHARE * self.late_rows)

    def as_dict(self) -> dict[str, Any]:
        return {"parts": f"{self.early}->{self.late}", "observed_rows": self.observed,
                "expected_by_chance": float(f"{self.expected:.3g}"), "p_value": float(f"{self.p_value:.3g}"),
                "held_out_rows": self.late_rows}


def rare_twins(early: str, late: str, observed: int, early_rows: int, late_rows: int, rare_pairs: float,
               within_pairs: float, coarse_rate: float) -> RareTwins:
    """The chance baseline from counts: ``rare_pairs`` of the ``within_pairs`` pairs of rows within parts are
    equal on every rare column, two rows share their coarse values and label at ``coarse_rate``.

    >>> t = rare_twins("train", "test", 2, 125, 36, rare_pairs=2, within_pairs=8400, coarse_rate=0.11)
    >>> round(t.expected, 3), t.significant, t.critical
    (0.118, True, False)
    """
    per_pair = early_rows * late_rows * coarse_rate / max(within_pairs, 1.0)
    return RareTwins(early, late, observed, per_pair * rare_pairs, per_pair * max(rare_pairs, 1.0), late_rows)


def rare_columns(data: AuditData, sample: pd.DataFrame) -> list[Any]:
    """Feature columns whose values seldom repeat in ``sample`` (two rows share one under :data:`RARE`)."""
    m = len(sample)
    rare = []
    for c in data.features:
        counts = sample[c].value_counts(dropna=False).to_numpy().astype(np.float64)
        if float(np.sum(counts * (counts - 1))) < RARE * m * (m - 1):
            rare.append(c)
    return rare


def check_rare_twins(data: AuditData, full_key: np.ndarray) -> dict[str, Any] | None:
    """The :class:`RareTwins` of each pair of parts, with the rates behind them; None when no column is rare
    or every column is (then a copy's values occur nowhere else and ``duplicates._natural`` says copies).

    ``full_key``: each row's key over the features and the label (copies carry their label).
    """
    assert data.part is not None
    groups = _groups(data)
    if groups is None:
        return None
    _, inv = np.unique(full_key, return_inverse=True)
    observed = {(e, l): int(observed_overlap(inv, data.part, e, l, int(inv.max()) + 1).sum()) for e, l in part_pairs(data.part)}
    sizes = [int(np.sum(data.part == p)) for p in range(3)]
    return _stated(groups, sizes, observed, _within_rare_pairs(data, groups[0]))


def rare_twins_of_sample(sample: AuditData, sizes: list[int], observed: dict[tuple[int, int], int]) -> dict[str, Any] | None:
    """:func:`check_rare_twins` for a table known by its part ``sizes``, the rows equal on every column and
    the label across each pair of parts (``observed``, counted over every row) and a row ``sample`` with its
    parts, which gives the rates (the out-of-core audit)."""
    groups = _groups(sample)
    if groups is None:
        return None
    return _stated(groups, sizes, observed, _within_rare_pairs(sample, groups[0]))


def _groups(data: AuditData) -> tuple[list[Any], list[Any], float, bool] | None:
    """``(rare columns, coarse columns, coarse rate, with the label)`` from a row sample; None when either
    group is empty."""
    m = min(data.n, _SAMPLE)
    if m < 2:
        return None
    rows = np.sort(np.random.default_rng(data.seed).choice(data.n, m, replace=False))
    sample = data.X.iloc[rows]
    rare = rare_columns(data, sample)
    coarse = [c for c in data.features if c not in set(rare)]
    if not rare or not coarse:
        return None
    coarse_hash = hash_rows(sample, coarse)
    if data.y is not None:
        coarse_hash = combine(coarse_hash, hash_column(pd.Series(data.y[rows])))
    return rare, coarse, 2 * _pairs(coarse_hash) / (m * (m - 1)), data.y is not None


def _within_rare_pairs(data: AuditData, rare: list[Any]) -> tuple[float, float]:
    """``(pairs equal on every rare column, pairs)`` among the rows of each part of ``data``."""
    assert data.part is not None
    rare_key = hash_rows(data.X, rare)
    parts = [np.flatnonzero(data.part == p) for p in range(3)]
    return float(sum(_pairs(rare_key[r]) for r in parts)), float(sum(len(r) * (len(r) - 1) / 2 for r in parts))


def _stated(groups: tuple[list[Any], list[Any], float, bool], sizes: list[int], observed: dict[tuple[int, int], int],
            within: tuple[float, float]) -> dict[str, Any]:
    rare, coarse, coarse_rate, label = groups
    rare_pairs, pairs = within
    twins = [rare_twins(PART_NAMES[e], PART_NAMES[l], obs, sizes[e], sizes[l], rare_pairs, pairs, coarse_rate)
             for (e, l), obs in observed.items()]
    return {"twins": twins, "rare_columns": [str(c) for c in rare], "coarse_columns": [str(c) for c in coarse],
            "rare_rate": rare_pairs / max(pairs, 1.0), "coarse_rate": coarse_rate, "label": label}


def _pairs(keys: np.ndarray) -> float:
    _, counts = np.unique(keys, return_counts=True)
    c = counts.astype(np.float64)
    return float(np.sum(c * (c - 1) / 2))
