"""The row-number split: each row's part is a pure function of its row number (or group key) and the seed.

A table too large for memory cannot be shuffled, so the audit of such a table (and ``cleanfit train`` on it)
splits it this way, chunk by chunk, and the in-memory code path uses the very same functions, so a table that
fits both ways gets the same split in and out of memory.

- ``by="random"``: row ``i`` gets the 64-bit key ``splitmix64(i + seed * K)``, read as a number in [0, 2**64);
  it lands in train below ``cut_points()[0]``, in val below ``cut_points()[1]``, else in test. So each row is in
  test with probability ``test`` (part sizes are binomial, within a few standard deviations of the fractions).
- ``by="group"``: the same, with the key made from the hash of the row's group value instead of its row number,
  so a group never straddles two parts.
- ``by="stratify"``: within each class, rows are ordered by ``(key, row)``; the first ``class_counts()[0]`` go to
  train, the next ``class_counts()[1]`` to val, the rest to test (exact per-class fractions). Out of core the
  ranks come from DuckDB's ``row_number() OVER (PARTITION BY label ORDER BY key, row)``.
- ``by="time"``: rows ordered by ``(time, row)``; test takes the last ``n_test``, val the ``n_val`` before it, train
  the rest (``n_val``, ``n_test`` from :func:`class_counts` of all rows). Equal times may fall on both sides of a
  boundary (they are not "earlier", so the temporal check does not flag them). ``gap=k`` drops the ``k`` rows
  (in time order) just before each later part, as :func:`cleanfit.split` does: val and test keep their sizes and
  train gives up the rows (:func:`time_bounds`); dropped rows are in no part (:data:`DROPPED`). Gaps need
  ``by="time"``, as in memory.

>>> spec = RowSplit("random", test=0.25, seed=0)
>>> random_part(np.arange(8), spec)
array([0, 0, 2, 0, 0, 0, 2, 0], dtype=int8)
>>> class_counts(10, spec)  # (train, val) rows of a class of 10 (test: round(2.5) = 3)
(7, 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cleanfit._util.args import check_seed
from cleanfit.data.split_args import check_fractions, check_gap
from cleanfit.errors import DataError

BY = ("auto", "random", "stratify", "group", "time")
TRAIN, VAL, TEST = 0, 1, 2
DROPPED = -1  # a row in no part (a time split's gap), as the audit's ``UNASSIGNED``
_SEED_STEP = np.uint64(0x9E3779B97F4A7C15)
_TWO64 = 2**64


@dataclass(frozen=True)
class RowSplit:
    """How to split a table by row number: ``by`` (random, stratify, group, time, or auto: see
    :meth:`resolved`), ``test`` and ``val`` fractions, ``seed``, and ``gap`` (rows dropped before each later
    part of a time split). Validated on construction.

    >>> RowSplit("stratify", test=0.2, val=0.1)
    RowSplit(by='stratify', test=0.2, val=0.1, seed=0, gap=0)
    >>> RowSplit("random", gap=2)
    Traceback (most recent call last):
    ...
    cleanfit.errors.DataError: split(by='random') got gap=2, gap_time=None: gaps separate parts in time order, so they need by='time' (and a time column)
    >>> RowSplit("auto").resolved("classification", time=None, groups=None).by
    'stratify'
    """

    by: str = "random"
    test: float = 0.2
    val: float = 0.0
    seed: int = 0
    gap: int = 0

    def __post_init__(self) -> None:
        if self.by not in BY:
            raise DataError(f"split by={self.by!r} is not a row split: use one of {', '.join(BY)}")
        test, val = check_fractions(self.test, self.val)
        object.__setattr__(self, "test", test)
        object.__setattr__(self, "val", val)
        object.__setattr__(self, "seed", check_seed(self.seed, "split"))
        # split()'s own rule (an int >= 0, only by time); "auto" is checked once it is resolved
        object.__setattr__(self, "gap", check_gap(self.gap, None, "time" if self.by == "auto" else self.by))

    def resolved(self, task: str | None, *, time: str | None, groups: str | None) -> RowSplit:
        """``by="auto"`` made concrete as ``cleanfit audit`` does: by time with a time column, else by group
        with a group column, else stratified for classification, else random."""
        if self.by != "auto":
            return self
        by = "time" if time else "group" if groups else "stratify" if task == "classification" else "random"
        return RowSplit(by, test=self.test, val=self.val, seed=self.seed, gap=self.gap)


def splitmix64(v: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, a bijection on uint64 (in place); the row split's keys and the audit's row
    hashes both mix with it.

    >>> splitmix64(np.array([0, 1], dtype=np.uint64)).tolist()
    [0, 6238072747940578789]
    """
    with np.errstate(over="ignore"):
        v ^= v >> np.uint64(30)
        v *= np.uint64(0xBF58476D1CE4E5B9)
        v ^= v >> np.uint64(27)
        v *= np.uint64(0x94D049BB133111EB)
        v ^= v >> np.uint64(31)
    return v


def row_keys(rows: np.ndarray, seed: int) -> np.ndarray:
    """The uint64 key of each row number: ``splitmix64(row + seed * K)``."""
    with np.errstate(over="ignore"):
        v = np.asarray(rows, dtype=np.int64).view(np.uint64) + np.uint64(seed) * _SEED_STEP
    return splitmix64(v)


def group_keys(values: pd.Series | np.ndarray, seed: int) -> np.ndarray:
    """The uint64 key of each row's group value (equal values, equal keys; missing values hash alike).

    Integers are keyed as the floats they equal (below 2**53), so a row group that pandas reads as floats
    (it has a missing value) keys its groups as one read as integers does.
    """
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.dtype.kind in "iu" and (arr.size == 0 or np.abs(arr).max() < 2**53):
        arr = arr.astype(np.float64)
    if arr.dtype.kind == "f":
        arr = arr + 0.0  # -0.0 and 0.0 are one group
    elif arr.dtype.kind not in "iub":
        arr = arr.astype(object)
    with np.errstate(over="ignore"):
        v = pd.util.hash_array(arr, categorize=False) ^ (np.uint64(seed) * _SEED_STEP)
    return splitmix64(v)


def cut_points(spec: RowSplit) -> tuple[int, int]:
    """The key bounds ``(train_below, val_below)`` of a random or group split, as ints in [0, 2**64]."""
    train_below = min(_TWO64, int((1.0 - spec.test - spec.val) * _TWO64))
    val_below = min(_TWO64, int((1.0 - spec.test) * _TWO64))
    return train_below, val_below


def part_of_keys(keys: np.ndarray, spec: RowSplit) -> np.ndarray:
    """int8 part (0 train, 1 val, 2 test) of each key under a random or group split."""
    train_below, val_below = cut_points(spec)
    part = np.full(len(keys), TEST, dtype=np.int8)
    if val_below < _TWO64:
        part[keys < np.uint64(val_below)] = VAL
    else:
        part[:] = VAL
    if train_below < _TWO64:
        part[keys < np.uint64(train_below)] = TRAIN
    else:
        part[:] = TRAIN
    return part


def random_part(rows: np.ndarray, spec: RowSplit) -> np.ndarray:
    """The part of each row number under ``by="random"``."""
    return part_of_keys(row_keys(rows, spec.seed), spec)


def class_counts(n: int, spec: RowSplit) -> tuple[int, int]:
    """``(train, val)`` rows of a class (or, for ``by="time"``, of the table) of ``n`` rows; test gets the rest.

    ``n_test = round(test * n)`` and ``n_val = round(val * n)`` (halves round up).
    """
    n_test = int(np.floor(spec.test * n + 0.5))
    n_val = min(n - n_test, int(np.floor(spec.val * n + 0.5)))
    return n - n_test - n_val, n_val


def time_bounds(n: int, spec: RowSplit) -> tuple[int, int, int, int]:
    """``(train_end, val_start, val_end, test_start)`` in time order of a time split of ``n`` rows: train is
    ranks ``[0, train_end)``, val ``[val_start, val_end)``, test ``[test_start, n)``; the ``gap`` ranks before each
    non-empty later part are in none (what :func:`cleanfit.split` drops, with the row split's part sizes).

    >>> time_bounds(10, RowSplit("time", test=0.2, val=0.2, gap=1))  # test 8-9, val 5-6, train 0-3
    (4, 5, 7, 8)
    """
    n_train, n_val = class_counts(n, spec)
    test_start = n_train + n_val
    val_end = test_start - (spec.gap if n - test_start else 0)
    val_start = val_end - n_val
    train_end = val_start - (spec.gap if n_val else 0)
    if spec.gap and train_end < 1:  # without a gap an empty train part is the caller's to refuse, as before
        raise DataError(f"split by='time' with gap={spec.gap} leaves no train rows out of {n:,} (test {n - test_start:,} "
                        f"rows, val {n_val:,}): make the gap or test/val smaller")
    return train_end, val_start, val_end, test_start


def _part_by_rank(rank: np.ndarray, bounds: tuple[int, int, int, int]) -> np.ndarray:
    train_end, val_start, val_end, test_start = bounds
    part = np.full(len(rank), DROPPED, dtype=np.int8)
    part[rank < train_end] = TRAIN
    part[(rank >= val_start) & (rank < val_end)] = VAL
    part[rank >= test_start] = TEST
    return part


def stratified_part(labels: np.ndarray, spec: RowSplit) -> np.ndarray:
    """The part of each row (rows ``0 .. n-1``) under ``by="stratify"`` by ``labels``."""
    n = len(labels)
    codes, _ = pd.factorize(pd.Series(labels), use_na_sentinel=True)
    keys = row_keys(np.arange(n), spec.seed)
    order = np.lexsort((np.arange(n), keys, codes))  # by class, then key, then row
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    limits = np.array([class_counts(int(s), spec) for s in sizes], dtype=np.int64).reshape(-1, 2)
    n_train, n_val = np.repeat(limits[:, 0], sizes), np.repeat(limits[:, 1], sizes)
    part = np.empty(n, dtype=np.int8)
    part[order] = np.where(rank < n_train, TRAIN, np.where(rank < n_train + n_val, VAL, TEST))
    return part


def time_part(times: np.ndarray, spec: RowSplit) -> np.ndarray:
    """The part of each row under ``by="time"``: ordered by ``(time, row)``, cut by position (``gap`` rows before
    each later part :data:`DROPPED`).

    >>> time_part(np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]), RowSplit("time", test=0.2, gap=1))
    array([ 2,  2, -1,  0,  0,  0,  0,  0,  0,  0], dtype=int8)
    """
    n = len(times)
    order = np.lexsort((np.arange(n), times))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return _part_by_rank(rank, time_bounds(n, spec))


def split_rows(spec: RowSplit, n: int, *, y: np.ndarray | None = None, groups: np.ndarray | None = None,
               time: np.ndarray | None = None) -> np.ndarray:
    """The int8 part of every row of an in-memory table of ``n`` rows (what the out-of-core audit computes);
    :data:`DROPPED` for a time split's gap rows.

    >>> split_rows(RowSplit("time", test=0.5), 4, time=np.array([3, 2, 1, 0]))
    array([2, 2, 0, 0], dtype=int8)
    """
    if spec.by == "auto":
        raise DataError("split by='auto' must be resolved first (RowSplit.resolved) to a concrete method")
    needs = {"stratify": ("y", y), "group": ("groups", groups), "time": ("time", time)}.get(spec.by)
    if needs is not None and needs[1] is None:
        raise DataError(f"split by={spec.by!r} needs {needs[0]}: name the column to split by")
    if spec.by == "random":
        return random_part(np.arange(n), spec)
    if spec.by == "group":
        assert groups is not None
        return part_of_keys(group_keys(groups, spec.seed), spec)
    if spec.by == "stratify":
        assert y is not None
        return stratified_part(y, spec)
    assert time is not None
    return time_part(time, spec)
