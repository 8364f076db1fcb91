"""Row keys and the chance baseline for rows shared across parts.

A row's key is a 64-bit hash of its values, built column by column (no Python loop per row). Rows
with equal keys are "the same" for the duplicate checks. How many held-out rows would share a key
with a train row if the split were random is computed exactly from the key multiplicities, so
natural collisions in low-cardinality data are not mistaken for leakage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from cleanfit.data.rowsplit import splitmix64

_MIX = np.uint64(0x9E3779B97F4A7C15)
# a held-out overlap is "clearly above chance" below this p-value
P_VALUE = 1e-4
# ... and critical when the excess over chance is at least this share of the held-out part
CRITICAL_SHARE = 0.01


def combine(h: np.ndarray | None, column_hash: np.ndarray) -> np.ndarray:
    """Fold one column's uint64 hashes into the running row hash (order matters)."""
    if h is None:
        return column_hash.copy()
    with np.errstate(over="ignore"):
        return (h * np.uint64(1_000_003)) ^ (column_hash + _MIX + (h << np.uint64(6)) + (h >> np.uint64(2)))


def hash_column(values: pd.Series | np.ndarray) -> np.ndarray:
    """uint64 hash per value; -0.0 and 0.0 hash alike, as do all NaNs."""
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.dtype.kind == "f":
        arr = arr + 0.0  # -0.0 -> 0.0
        arr[np.isnan(arr)] = np.nan
    elif arr.dtype.kind in "iub":
        pass
    else:
        arr = arr.astype(object) if arr.dtype.kind != "O" else arr
    return pd.util.hash_array(arr, categorize=False)


_ROWS = 1 << 16


def hash_rows(frame: pd.DataFrame, columns: list | None = None) -> np.ndarray:
    """One uint64 key per row from its values in ``columns`` (default: all) of ``frame``.

    Numeric columns are hashed together in row blocks: each value's bits (with -0.0 read as 0.0 and
    one NaN for all) are mixed, multiplied by a per-column odd constant and summed modulo 2**64, so
    equal rows get equal keys and distinct rows collide with probability ~2**-64. Other columns are
    hashed one at a time with pandas' hash_array and folded in. No copy of the frame is made.
    """
    names = list(frame.columns) if columns is None else list(columns)
    if not names:
        raise ValueError("hash_rows needs at least one column")
    positions = [frame.columns.get_loc(c) for c in names]
    numeric = [p for p in positions if _exact_as_float(frame.iloc[:, p])]
    h = _hash_numeric(frame, numeric) if numeric else None
    for p in positions:
        if p not in set(numeric):
            h = combine(h, hash_column(frame.iloc[:, p]))
    assert h is not None
    return h


def _exact_as_float(col: pd.Series) -> bool:
    """Whether a column's values survive conversion to float64 exactly (floats, bools, ints < 2**53)."""
    kind = col.dtype.kind
    if kind in "fb":
        return True
    if kind in "iu":
        return len(col) == 0 or bool(abs(float(col.min())) < 2**53 and abs(float(col.max())) < 2**53)
    return False


def _hash_numeric(frame: pd.DataFrame, positions: list[int]) -> np.ndarray:
    n = len(frame)
    weights = np.random.default_rng(20240613).integers(0, 2**63, size=len(positions), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    out = np.empty(n, dtype=np.uint64)
    for start in range(0, n, _ROWS):
        stop = min(start + _ROWS, n)
        block = frame.iloc[start:stop, positions].to_numpy(dtype=np.float64, na_value=np.nan) + 0.0  # -0.0 -> 0.0
        block[np.isnan(block)] = np.nan
        bits = splitmix64(block.view(np.uint64))
        with np.errstate(over="ignore"):
            bits *= weights
        out[start:stop] = splitmix64(bits.sum(axis=1, dtype=np.uint64))
    return out


@dataclass
class Overlap:
    """Held-out rows of part ``late`` that share a key with a row of part ``early``."""

    early: str
    late: str
    observed: int
    expected: float
    p_value: float
    late_rows: int

    @property
    def excess(self) -> float:
        return self.observed - self.expected

    @property
    def significant(self) -> bool:
        return self.excess >= 1 and self.p_value < P_VALUE

    @property
    def critical(self) -> bool:
        return self.significant and self.excess >= CRITICAL_SHARE * self.late_rows

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "parts": f"{self.early}->{self.late}",
            "observed_rows": self.observed,
            "expected_by_chance": round(self.expected, 2),
            "p_value": float(f"{self.p_value:.3g}"),
            "held_out_rows": self.late_rows,
        }


def observed_overlap(inv: np.ndarray, part: np.ndarray, early: int, late: int, n_keys: int) -> np.ndarray:
    """A mask over rows: rows of ``late`` whose key also occurs in ``early``."""
    in_early = np.zeros(n_keys, dtype=bool)
    in_early[inv[part == early]] = True
    return (part == late) & in_early[inv]


def chance_overlap(inv: np.ndarray, part: np.ndarray, early: int, late: int, n_keys: int) -> tuple[float, float]:
    """Mean and variance of the overlap count if the assigned rows were split at random.

    Each assigned row lands in ``early`` with probability ``pe`` and in ``late`` with ``pl`` (the
    observed part shares). For a key with ``m`` rows, the held-out rows with a copy in ``early`` are
    ``X = K_late * [K_early > 0]``; its mean and variance follow from the multinomial, and keys are
    summed as independent.
    """
    assigned = part >= 0
    n = int(assigned.sum())
    pe = float(np.sum(part == early)) / n
    pl = float(np.sum(part == late)) / n
    mult = np.bincount(inv[assigned], minlength=n_keys)
    m_values, how_many = np.unique(mult[mult > 1], return_counts=True)
    return chance_from_multiplicities(m_values, how_many, pe, pl)


def chance_from_multiplicities(m_values: np.ndarray, how_many: np.ndarray, pe: float, pl: float) -> tuple[float, float]:
    """:func:`chance_overlap` from its sufficient statistics: ``how_many[j]`` keys hold ``m_values[j]``
    assigned rows (keys with one row may be left out), and the part shares ``pe`` and ``pl``.

    >>> chance_from_multiplicities(np.array([2]), np.array([10]), 0.5, 0.5)  # 10 pairs split 50/50
    (5.0, 2.5)
    """
    m = np.asarray(m_values).astype(np.float64)
    w = np.asarray(how_many).astype(np.float64)
    none_early = (1 - pe) ** (m - 1)
    mean = m * pl * (1 - none_early)
    q = pl / (1 - pe) if pe < 1 else 0.0
    ek2 = m * pl * (1 - pl) + m**2 * pl**2
    ek2_none = (1 - pe) ** m * (m * q * (1 - q) + m**2 * q**2)
    var = np.maximum(ek2 - ek2_none - mean**2, 0.0)
    return float(np.sum(w * mean)), float(np.sum(w * var))


def p_value(observed: float, mean: float, var: float) -> float:
    """One-sided p-value of seeing ``observed`` or more (normal approximation, continuity-corrected, variance at least 1)."""
    if observed <= mean:
        return 1.0
    # a floor of 1 on the variance: an estimate from few permutations, or a single chance pair,
    # must not make one extra row "significant"
    return float(stats.norm.sf((observed - 0.5 - mean) / np.sqrt(max(var, 1.0))))


def part_pairs(part: np.ndarray) -> list[tuple[int, int]]:
    """(earlier, held-out) part pairs that both have rows: train->val, train->test, val->test."""
    present = {p for p in (0, 1, 2) if np.any(part == p)}
    return [(a, b) for a, b in ((0, 1), (0, 2), (1, 2)) if a in present and b in present]
