"""The four ways :func:`cleanfit.split` cuts rows: random, stratified, by group and by time.

Each splitter takes validated, plain NumPy inputs and returns ``(train, val, test)`` as unsorted
int64 row arrays; :mod:`cleanfit.data.splits` checks the arguments first and wraps the result.
Random and group splits are scikit-learn's ``ShuffleSplit`` / ``GroupShuffleSplit`` applied twice
(test first, then val from the rest), so asking for a val part never changes the test part.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from cleanfit.errors import DataError

Parts = tuple[np.ndarray, np.ndarray, np.ndarray]
_EMPTY = np.empty(0, dtype=np.int64)


def part_sizes(n: int, test: float, val: float, *, unit: str = "rows") -> tuple[int, int, int]:
    """``(n_train, n_val, n_test)`` for ``n`` units: ``ceil(fraction * n)``, at least 1 if asked for.

    >>> part_sizes(10, 0.2, 0.1)
    (7, 1, 2)
    """
    n_test = _count(test, n)
    n_val = _count(val, n)
    n_train = n - n_test - n_val
    if n_train < 1:
        raise DataError(
            f"cannot split {n} {unit} into test={test} ({n_test} {unit}), val={val} "
            f"({n_val} {unit}) and a non-empty train part: use more {unit} or smaller fractions"
        )
    return n_train, n_val, n_test


def _count(fraction: float, n: int) -> int:
    if fraction == 0:
        return 0
    # The small tolerance keeps float noise (0.7 * 10 == 7.000000000000001) from adding a row.
    return max(1, math.ceil(fraction * n - 1e-9))


def random_split(n: int, n_val: int, n_test: int, seed: int) -> Parts:
    """Shuffle-split ``range(n)`` with scikit-learn's ``train_test_split``."""
    rng = np.random.RandomState(seed)
    rest, test = _shuffle_cut(np.arange(n, dtype=np.int64), n_test, rng)
    train, val = _shuffle_cut(rest, n_val, rng)
    return train, val, test


def _shuffle_cut(rows: np.ndarray, size: int, rng: np.random.RandomState) -> tuple[Any, Any]:
    if size == 0:
        return rows, _EMPTY
    return train_test_split(rows, test_size=size, random_state=rng)


def group_split(codes: np.ndarray, n_groups: int, n_val: int, n_test: int, seed: int) -> Parts:
    """Whole groups to each part with scikit-learn's ``GroupShuffleSplit``.

    ``codes`` are group ids ``0 .. n_groups - 1``; ``n_val``/``n_test`` count groups, not rows.
    """
    rng = np.random.RandomState(seed)
    rows = np.arange(len(codes), dtype=np.int64)
    rest, test = _group_cut(rows, codes, n_test, rng)
    train, val = _group_cut(rest, codes[rest], n_val, rng)
    return train, val, test


def _group_cut(
    rows: np.ndarray, codes: np.ndarray, size: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    if size == 0:
        return rows, _EMPTY
    splitter = GroupShuffleSplit(n_splits=1, test_size=size, random_state=rng)
    keep, cut = next(splitter.split(rows, groups=codes))
    return rows[keep], rows[cut]


def stratified_split(
    codes: np.ndarray, classes: np.ndarray, n_val: int, n_test: int, seed: int
) -> Parts:
    """Every class in every part, in proportion: each part's share of a class is within a row or two.

    scikit-learn's ``train_test_split(stratify=...)`` applied twice cannot promise this (the second
    cut fails when the first leaves a class with one row), so the per-class counts are apportioned
    here by largest remainder, as ``StratifiedShuffleSplit`` does for two parts, with one row of
    every class reserved for each part. ``codes`` are class ids ``0 .. len(classes) - 1``.
    """
    n = len(codes)
    counts = np.bincount(codes, minlength=len(classes))
    _check_strata(counts, classes, n - n_val - n_test, n_val, n_test)
    rng = np.random.default_rng(seed)
    later = int(n_val > 0) + 1  # parts still to fill after test: val (if asked) and train
    take_test = _apportion(counts, counts, n_test, later, rng)
    take_val = _apportion(counts, counts - take_test, n_val, 1, rng)

    # Rows grouped by class, in random order inside each class; each class block is cut in three.
    order = rng.permutation(n)
    order = order[np.argsort(codes[order], kind="stable")]
    block_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cls = codes[order]
    rank = np.arange(n) - block_start[cls]
    in_test = rank < take_test[cls]
    in_val = ~in_test & (rank < (take_test + take_val)[cls])
    return order[~in_test & ~in_val], order[in_val], order[in_test]


def _check_strata(
    counts: np.ndarray, classes: np.ndarray, n_train: int, n_val: int, n_test: int
) -> None:
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    parts = [name for name, size in sizes.items() if size > 0]
    rare = np.flatnonzero(counts < len(parts))
    if rare.size:
        shown = ", ".join(f"{_label(classes[i])} ({_rows(counts[i])})" for i in rare[:5])
        more = f" and {rare.size - 5} more" if rare.size > 5 else ""
        raise DataError(
            f"by='stratify' needs every class of y in each of the {len(parts)} parts "
            f"({', '.join(parts)}), so at least {len(parts)} rows per class; too few rows in class "
            f"{shown}{more}: merge rare classes, drop them, or use by='random'"
        )
    for name in parts:
        if sizes[name] < len(counts):
            raise DataError(
                f"by='stratify': the {name} part has {_rows(sizes[name])} but y has {len(counts)} "
                f"classes, and every part needs one row of each class: make {name} larger "
                f"(or use by='random')"
            )


def _label(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _rows(count: Any) -> str:
    return f"{int(count)} row{'s' if count != 1 else ''}"


def _apportion(
    counts: np.ndarray, available: np.ndarray, size: int, reserve: int, rng: np.random.Generator
) -> np.ndarray:
    """Per-class row counts summing to ``size``, close to ``counts * size / n``.

    Each class gets at least one row and leaves ``reserve`` rows for the parts filled later;
    largest remainders (random among ties) take the rows left over, as in scikit-learn.
    """
    take = np.zeros_like(counts)
    if size == 0:
        return take
    ideal = counts * (size / counts.sum())
    cap = available - reserve
    take = np.clip(np.floor(ideal).astype(np.int64), 1, cap)
    tiebreak = rng.random(len(counts))
    while (short := size - int(take.sum())) != 0:
        step = 1 if short > 0 else -1
        room = take < cap if step > 0 else take > 1
        # Most under-served first when adding, most over-served first when removing.
        need = (ideal - take) * step
        if not room.any():  # the size checks in _check_strata make this unreachable
            raise AssertionError("stratified allocation has no room left")
        pick = np.flatnonzero(room)[np.lexsort((tiebreak[room], -need[room]))][: abs(short)]
        take[pick] += step
    return take


def time_split(t: np.ndarray, n_val: int, n_test: int, gap: int, gap_time: Any) -> Parts:
    """Train before val before test in time, with ``gap`` rows and ``gap_time`` dropped between.

    Rows are ordered by ``t`` (ties by row number). Test takes the last ``n_test`` rows and val the
    ``n_val`` rows before it, each cut moved to the nearest change of time so that equal times stay
    in one part; then ``gap`` rows before each cut are dropped, and every earlier row whose time is
    within ``gap_time`` of the next part's first time. Train gets what is left at the front.
    """
    n = len(t)
    order = np.argsort(t, kind="stable").astype(np.int64)
    ts = t[order]
    cuts = np.flatnonzero(ts[1:] != ts[:-1]) + 1  # positions where the time changes
    end = n
    parts: dict[str, np.ndarray] = {"val": _EMPTY, "test": _EMPTY}
    for name, size in (("test", n_test), ("val", n_val)):
        if size == 0:
            continue
        start = _nearest_cut(cuts, end - size, end, name, n)
        parts[name] = order[start:end]
        end = start - gap
        if gap_time is not None:
            end = min(end, int(np.searchsorted(ts, ts[start] - gap_time, side="left")))
        if end < 1:
            raise DataError(
                f"by='time' leaves no rows before the {name} part (it starts at row {start} of {n} "
                f"in time order, gap={gap}, gap_time={gap_time}): make test/val or the gap smaller"
            )
    return order[:end], parts["val"], parts["test"]


def _nearest_cut(cuts: np.ndarray, target: int, end: int, name: str, n: int) -> int:
    options = cuts[cuts < end]
    if options.size == 0:
        raise DataError(
            f"by='time' cannot start the {name} part: the time column has too few distinct values "
            f"before it ({n} rows); use more distinct times or smaller fractions"
        )
    i = int(np.searchsorted(options, target))
    near = options[max(i - 1, 0) : i + 1][::-1]  # the cut at or after target first: it wins ties
    return int(near[np.argmin(np.abs(near - target))])


# ------------------------------------------------------------------ from the fractions split() takes


def random_parts(n: int, test: float, val: float, seed: int) -> Parts:
    _, n_val, n_test = part_sizes(n, test, val)
    return random_split(n, n_val, n_test, seed)


def stratified_parts(codes: np.ndarray, classes: np.ndarray, test: float, val: float, seed: int) -> Parts:
    _, n_val, n_test = part_sizes(len(codes), test, val)
    return stratified_split(codes, classes, n_val, n_test, seed)


def group_parts(codes: np.ndarray, n_groups: int, test: float, val: float, seed: int) -> Parts:
    """Whole groups per part; the fractions count groups, and every part asked for needs one."""
    needed = 1 + (test > 0) + (val > 0)
    if n_groups < needed:
        raise DataError(
            f"split(by='group') got {n_groups} distinct group{'s' * (n_groups != 1)} "
            f"but needs at least {needed}, one per part: use more groups or fewer parts"
        )
    _, g_val, g_test = part_sizes(n_groups, test, val, unit="groups")
    return group_split(codes, n_groups, g_val, g_test, seed)


def time_parts(t: np.ndarray, test: float, val: float, gap: int, gap_time: Any) -> Parts:
    _, n_val, n_test = part_sizes(len(t), test, val)
    return time_split(t, n_val, n_test, gap, gap_time)
