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

import hashlib
from collections.abc import Iterator
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
_CHUNK = 1 << 20  # rows keyed at a time by split_rows


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


def stratified_part(labels: np.ndarray, spec: RowSplit) -> np.ndarray:
    """The part of each row (rows ``0 .. n-1``) under ``by="stratify"`` by ``labels``.

    One class at a time: its rows (ascending) sorted by key with a stable sort, so ``(key, row)`` order, and
    cut by :func:`class_counts`. What is held besides the result is the classes' small-integer codes and a few
    arrays of the largest class, not sort keys of the whole table.

    >>> stratified_part(np.array([5, 5, 5, 5, 7, 7, 7, 7]), RowSplit("stratify", test=0.25, val=0.25))
    array([0, 1, 2, 0, 1, 0, 2, 0], dtype=int8)
    """
    part = np.empty(len(labels), dtype=np.int8)
    for rows in _class_rows(class_codes(labels)):
        rows = rows[np.argsort(row_keys(rows, spec.seed), kind="stable")]  # by key, then row: rows ascend
        n_train, n_val = class_counts(len(rows), spec)
        part[rows[:n_train]] = TRAIN
        part[rows[n_train:n_train + n_val]] = VAL
        part[rows[n_train + n_val:]] = TEST
    return part


def class_codes(labels: np.ndarray | pd.Series) -> np.ndarray:
    """Each row's class as the smallest signed integer that holds it: equal labels, equal codes (a missing label
    is a class of its own, ``-1``). Integer labels are offset by their minimum, without a copy of 8 bytes a row.

    >>> class_codes(np.array([10, 12, 10])), class_codes(np.array(["b", None, "a", "b"], dtype=object))
    (array([0, 2, 0], dtype=int8), array([ 0, -1,  1,  0], dtype=int8))
    """
    arr = labels.to_numpy() if isinstance(labels, pd.Series) else np.asarray(labels)
    if arr.dtype.kind in "iub" and arr.size:
        arr = arr.view(np.uint8) if arr.dtype.kind == "b" else arr
        low, high = int(arr.min()), int(arr.max())
        if high - low < 2**31:
            codes = np.empty(len(arr), dtype=np.min_scalar_type(-(high - low) - 1))
            np.subtract(arr, arr.dtype.type(low), out=codes, casting="unsafe")  # values in [0, high - low]
            return codes
    codes, uniques = pd.factorize(pd.Series(arr), use_na_sentinel=True)
    return codes.astype(np.min_scalar_type(-max(len(uniques), 1)))


def _class_rows(codes: np.ndarray) -> Iterator[np.ndarray]:
    """The row numbers of each class (ascending), one class at a time: by a mask per class for a few classes,
    else from one stable sort of the codes."""
    if codes.size == 0:
        return
    low, high = int(codes.min()), int(codes.max())
    if high - low < 16:
        for code in range(low, high + 1):
            rows = np.flatnonzero(codes == code)
            if rows.size:
                yield rows
        return
    order = np.argsort(codes, kind="stable")
    yield from np.split(order, np.flatnonzero(np.diff(codes[order]) != 0) + 1)


def time_part(times: np.ndarray, spec: RowSplit) -> np.ndarray:
    """The part of each row under ``by="time"``: ordered by ``(time, row)``, cut by position (``gap`` rows before
    each later part :data:`DROPPED`).

    >>> time_part(np.array([9, 8, 7, 6, 5, 4, 3, 2, 1, 0]), RowSplit("time", test=0.2, gap=1))
    array([ 2,  2, -1,  0,  0,  0,  0,  0,  0,  0], dtype=int8)
    """
    train_end, val_start, val_end, test_start = time_bounds(len(times), spec)
    order = np.argsort(times, kind="stable")  # by time, then row
    part = np.full(len(times), DROPPED, dtype=np.int8)
    part[order[:train_end]] = TRAIN
    part[order[val_start:val_end]] = VAL
    part[order[test_start:]] = TEST
    return part


def part_fingerprint(part: np.ndarray, chunk: int = 1 << 20) -> str:
    """``Splits(*(np.flatnonzero(part == p) for p in (0, 1, 2))).fingerprint`` without those index arrays:
    streamed over ``chunk`` rows at a time (a table over the budget holds only ``part``).

    >>> from cleanfit.data.splits import Splits
    >>> part = np.array([0, 2, -1, 0, 1], dtype=np.int8)
    >>> part_fingerprint(part, chunk=2) == Splits([0, 3], [4], [1]).fingerprint
    True
    """
    digest = hashlib.sha256()
    for code, name in enumerate(("train", "val", "test")):
        digest.update(f"{name}:{int(np.count_nonzero(part == code))};".encode())
        for start in range(0, len(part), chunk):
            rows = np.flatnonzero(part[start:start + chunk] == code) + start
            digest.update(rows.astype("<i8").tobytes())
    return digest.hexdigest()


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
    if groups is not None and isinstance(groups, pd.Series):
        groups = groups.to_numpy()
    if spec.by in ("random", "group"):  # keyed row by row: a chunk at a time, not keys of the whole table
        part = np.empty(n, dtype=np.int8)
        for start in range(0, n, _CHUNK):
            stop = min(n, start + _CHUNK)
            keys = row_keys(np.arange(start, stop), spec.seed) if spec.by == "random" else group_keys(groups[start:stop], spec.seed)
            part[start:stop] = part_of_keys(keys, spec)
        return part
    if spec.by == "stratify":
        assert y is not None
        return stratified_part(y, spec)
    assert time is not None
    return time_part(time, spec)
