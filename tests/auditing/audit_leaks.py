"""Real and synthetic datasets, clean splits, and functions that plant one kind of leak at a strength.

Shared by tests/test_audit_leaks.py (detection must happen) and benchmarks/bench_audit.py (recall and
false alarms per check, written to docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.preprocessing import StandardScaler, TargetEncoder


@dataclass
class Parts:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    gap: int = 0
    gap_time: Any = None


@dataclass
class Case:
    """Arguments for ``audit`` (and what the check under test is)."""

    X: pd.DataFrame
    y: np.ndarray
    splits: Parts
    kwargs: dict[str, Any] = field(default_factory=dict)


def load(name: str, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A dataset with rows shuffled (so stored order carries no label information)."""
    if name == "synthetic-classification":
        X, y = datasets.make_classification(1500, 12, n_informative=6, random_state=seed)
    elif name == "synthetic-regression":
        X, y = datasets.make_regression(1500, 10, n_informative=6, noise=20.0, random_state=seed)
    else:
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    order = np.random.default_rng(seed).permutation(len(frame))
    return frame.iloc[order].reset_index(drop=True), np.asarray(y)[order]


DATASETS = ["breast_cancer", "wine", "iris", "digits", "diabetes", "synthetic-classification", "synthetic-regression"]
CLASSIFICATION = {"breast_cancer", "wine", "iris", "digits", "synthetic-classification"}


def random_parts(n: int, seed: int = 0, test: float = 0.2, val: float = 0.1) -> Parts:
    perm = np.random.default_rng(seed + 100).permutation(n)
    n_test, n_val = int(round(test * n)), int(round(val * n))
    return Parts(np.sort(perm[n_test + n_val:]), np.sort(perm[n_test:n_test + n_val]), np.sort(perm[:n_test]))


def clean(name: str, seed: int = 0) -> Case:
    X, y = load(name, seed)
    return Case(X, y, random_parts(len(X), seed))


# ---- plants: (case, strength, rng) -> case with the leak -------------------------------------------

def plant_duplicates(case: Case, share: float, rng: np.random.Generator) -> Case:
    """Overwrite ``share`` of the test rows with copies of random train rows (features and label)."""
    X, y = case.X.copy(), case.y.copy()
    k = max(1, int(round(share * len(case.splits.test))))
    dst = rng.choice(case.splits.test, k, replace=False)
    src = rng.choice(case.splits.train, k, replace=False)
    X.iloc[dst] = X.iloc[src].to_numpy()
    y[dst] = y[src]
    return Case(X, y, case.splits)


def plant_near_duplicates(case: Case, noise: float, rng: np.random.Generator, share: float = 0.2) -> Case:
    """Like duplicates, but each copied value gets Gaussian noise of ``noise`` column std."""
    X = plant_duplicates(case, share, np.random.default_rng(rng.integers(1 << 30)))
    changed = np.flatnonzero(np.any(X.X.to_numpy() != case.X.to_numpy(), axis=1))
    values = np.array(X.X.to_numpy(dtype=np.float64))
    std = case.X.to_numpy(dtype=np.float64).std(axis=0)
    values[changed] += rng.normal(size=(len(changed), values.shape[1])) * std * noise
    return Case(pd.DataFrame(values, columns=case.X.columns), X.y, case.splits)


def plant_proxy(case: Case, strength: float, rng: np.random.Generator) -> Case:
    """Add a column that is the target: classes with ``strength`` of labels flipped away, or y + noise."""
    X = case.X.copy()
    y = case.y
    if y.dtype.kind in "iu" or len(np.unique(y)) <= 20:
        leak = y.astype(np.float64).copy()
        flip = rng.random(len(y)) < strength
        leak[flip] = rng.choice(np.unique(y), flip.sum())
        leak = leak * 3 + 7
    else:
        leak = y + rng.normal(size=len(y)) * y.std() * strength
    X["leak"] = leak
    return Case(X, y, case.splits)


def plant_missingness(case: Case, strength: float, rng: np.random.Generator) -> Case:
    """A column that is missing for one class (or above-median targets) except ``strength`` of rows."""
    X = case.X.copy()
    y = case.y
    positive = (y == np.unique(y)[0]) if len(np.unique(y)) <= 20 else (y > np.median(y))
    mask = positive ^ (rng.random(len(y)) < strength)
    col = rng.normal(size=len(y))
    col[mask] = np.nan
    X["filled_later"] = col
    return Case(X, y, case.splits)


def plant_future_target(case: Case, shift: int, rng: np.random.Generator) -> Case:
    """With rows in time order, a column holding the target ``shift`` rows later."""
    X = case.X.copy()
    y = case.y.astype(np.float64)
    X["next_y"] = np.concatenate([y[shift:], rng.choice(y, shift)])
    return Case(X, case.y, case.splits, {"time": np.arange(len(y))})


def plant_identifier(case: Case, order_kept: float, rng: np.random.Generator) -> Case:
    """An integer row id assigned in label order, then ``1 - order_kept`` of the ids shuffled."""
    X = case.X.copy()
    ids = np.empty(len(X), dtype=np.int64)
    ids[np.argsort(case.y, kind="stable")] = np.arange(len(X)) + 10_000
    move = np.flatnonzero(rng.random(len(X)) > order_kept)
    ids[move] = ids[rng.permutation(move)]
    X.insert(0, "record_id", ids)
    return Case(X, case.y, case.splits)


def plant_temporal(case: Case, share: float, rng: np.random.Generator) -> Case:
    """Rows in time order, split by time, then ``share`` of test rows swapped with early train rows."""
    n = len(case.X)
    n_test = len(case.splits.test)
    test = np.arange(n - n_test, n)
    train = np.arange(0, n - n_test)
    k = max(1, int(round(share * n_test)))
    swap_test = rng.choice(test, k, replace=False)
    swap_train = rng.choice(train, k, replace=False)
    test = np.sort(np.concatenate([np.setdiff1d(test, swap_test), swap_train]))
    train = np.sort(np.concatenate([np.setdiff1d(train, swap_train), swap_test]))
    return Case(case.X, case.y, Parts(train, np.array([], dtype=np.int64), test), {"time": np.arange(n)})


def time_split(case: Case) -> Case:
    n = len(case.X)
    n_test = len(case.splits.test)
    return Case(case.X, case.y, Parts(np.arange(n - n_test), np.array([], dtype=np.int64), np.arange(n - n_test, n)),
                {"time": np.arange(n)})


def with_groups(case: Case, size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(len(case.X)) // size)


def group_split(case: Case, groups: np.ndarray, rng: np.random.Generator) -> Parts:
    ids = np.unique(groups)
    test_ids = rng.choice(ids, int(round(0.2 * len(ids))), replace=False)
    test = np.isin(groups, test_ids)
    return Parts(np.flatnonzero(~test), np.array([], dtype=np.int64), np.flatnonzero(test))


def plant_group(case: Case, share: float, rng: np.random.Generator) -> Case:
    """Groups of 5 rows; a group split, then ``share`` of the test groups spread over train too."""
    groups = with_groups(case, 5, rng)
    parts = group_split(case, groups, rng)
    test_groups = np.unique(groups[parts.test])
    leaked = rng.choice(test_groups, max(1, int(round(share * len(test_groups)))), replace=False)
    move = parts.test[np.isin(groups[parts.test], leaked)]
    move = move[rng.random(len(move)) < 0.5]
    train = np.sort(np.concatenate([parts.train, move]))
    test = np.setdiff1d(parts.test, move)
    return Case(case.X, case.y, Parts(train, parts.val, test), {"groups": groups})


def plant_preprocessing(case: Case, kind: str, rng: np.random.Generator) -> Case:
    """A scaler (or a target encoder on a binned column) fit on all rows instead of train rows."""
    if kind == "scaler":
        t = StandardScaler().fit(case.X)
        return Case(case.X, case.y, case.splits, {"transformers": [t]})
    X = case.X.copy()
    X["bucket"] = pd.qcut(X.iloc[:, 0], 10, labels=False, duplicates="drop").astype(str)
    y = case.y if len(np.unique(case.y)) <= 20 else case.y.astype(np.float64)
    t = TargetEncoder(random_state=0).fit(X[["bucket"]], y)
    return Case(X, case.y, case.splits, {"transformers": [t]})


def plant_label_order(case: Case, blocked: float, rng: np.random.Generator) -> Case:
    """Rows sorted by label; then ``1 - blocked`` of the rows shuffled back."""
    order = np.argsort(case.y, kind="stable")
    move = np.flatnonzero(rng.random(len(order)) > blocked)
    order[move] = order[rng.permutation(move)]
    X = case.X.iloc[order].reset_index(drop=True)
    return Case(X, case.y[order], random_parts(len(X)))


def plant_split_shift(case: Case, strength: float, rng: np.random.Generator) -> Case:
    """Move ``strength`` of the train rows of the rarest class into test (1.0: train never sees it)."""
    values, counts = np.unique(case.y, return_counts=True)
    rare = values[np.argmin(counts)]
    train = case.splits.train
    move = train[(case.y[train] == rare) & (rng.random(len(train)) < strength)]
    return Case(case.X, case.y, Parts(np.setdiff1d(train, move), case.splits.val, np.sort(np.concatenate([case.splits.test, move]))))


# ---- issue 15's families: copies the chance baselines missed, text ids in class order ----------------

def entered_twice(case: Case, k: int, rng: np.random.Generator) -> Case:
    """``k`` train records entered a second time, over test rows."""
    X, y = case.X.copy(), case.y.copy()
    dst = rng.choice(case.splits.test, k, replace=False)
    src = rng.choice(case.splits.train, k, replace=False)
    X.iloc[dst] = X.iloc[src].to_numpy()
    y[dst] = y[src]
    return Case(X, y, case.splits)


def rounded_copies(case: Case, share: float, rng: np.random.Generator) -> Case:
    """``share`` of the test rows overwritten by train rows whose amounts (columns of 10 and more) were
    re-exported in whole units."""
    X, y = case.X.copy(), case.y.copy()
    k = max(1, int(round(share * len(case.splits.test))))
    dst = rng.choice(case.splits.test, k, replace=False)
    src = rng.choice(case.splits.train, k, replace=False)
    values = np.array(X.iloc[src].to_numpy(dtype=np.float64))
    amounts = (X.abs().median() >= 10).to_numpy()
    values[:, amounts] = np.round(values[:, amounts])
    X.iloc[dst] = values
    y[dst] = y[src]
    return Case(X, y, case.splits)


def moved_a_grey_level(case: Case, share: float, rng: np.random.Generator, pixels: int = 3) -> Case:
    """``share`` of the test rows overwritten by train images with a few pixels moved by one grey level."""
    X, y = case.X.copy(), case.y.copy()
    k = max(1, int(round(share * len(case.splits.test))))
    dst = rng.choice(case.splits.test, k, replace=False)
    src = rng.choice(case.splits.train, k, replace=False)
    values = np.array(X.iloc[src].to_numpy(dtype=np.float64))
    for r in range(k):
        where = rng.choice(X.shape[1], pixels, replace=False)
        values[r, where] = np.clip(values[r, where] + rng.choice([-1.0, 1.0], pixels), 0, 16)
    X.iloc[dst] = values
    y[dst] = y[src]
    return Case(X, y, case.splits)


def plant_text_ids(case: Case, order_kept: float, rng: np.random.Generator) -> Case:
    """Ids like ``W-0001`` issued one class after the other (the rows stay shuffled), then
    ``1 - order_kept`` of them shuffled."""
    ids = np.empty(len(case.X), dtype=np.int64)
    ids[np.argsort(case.y, kind="stable")] = np.arange(len(case.X)) + 1
    move = np.flatnonzero(rng.random(len(ids)) > order_kept)
    ids[move] = ids[rng.permutation(move)]
    return Case(case.X.assign(ref=[f"W-{i}" for i in ids]), case.y, case.splits)  # not zero-padded: "W-10" > "W-9"


def plant_entered_twice(case: Case, k: int, rng: np.random.Generator) -> Case:
    """The small coarse table of ``case``, with ``k`` records entered twice."""
    return entered_twice(small_table_of(case), k, rng)


def small_table_of(case: Case) -> Case:
    """Two coarse columns of ``case`` (rows repeat on them all the time) and one continuous amount from it."""
    X = case.X
    small = pd.DataFrame({"high": (X["f1"] > X["f1"].median()).astype(int), "band": pd.qcut(X["f2"], 2, labels=False),
                          "amount": X["f3"] + X["f5"] / 1000})
    return Case(small, case.y, case.splits)


Plant = Callable[[Case, float, np.random.Generator], Case]

# check id -> (plant, strengths weakest first, which datasets it applies to)
PLANTS: dict[str, tuple[Any, list[Any], list[str]]] = {
    "duplicates": (plant_duplicates, [0.05, 0.1, 0.25], DATASETS),
    "near-duplicates": (plant_near_duplicates, [0.01, 0.005, 0.001], DATASETS),
    "target-leakage": (plant_proxy, [0.01, 0.003, 0.0], DATASETS),
    "target-leakage/missingness": (plant_missingness, [0.002, 0.0], DATASETS),
    "target-leakage/future": (plant_future_target, [1, 2], DATASETS),
    "identifier": (plant_identifier, [0.8, 0.9, 1.0], DATASETS),
    "temporal": (plant_temporal, [0.05, 0.2, 0.5], DATASETS),
    "group": (plant_group, [0.1, 0.3, 1.0], DATASETS),
    "preprocessing": (plant_preprocessing, ["scaler", "target-encoder"], DATASETS),
    "label-order": (plant_label_order, [0.8, 0.95, 1.0], sorted(CLASSIFICATION)),
    "split-shift": (plant_split_shift, [1.0], sorted(CLASSIFICATION)),
    "duplicates/entered-twice": (plant_entered_twice, [2, 4, 8], ["breast_cancer", "wine", "diabetes"]),
    "near-duplicates/rounded": (rounded_copies, [0.03, 0.1, 0.2], ["breast_cancer", "wine"]),
    "near-duplicates/grey-level": (moved_a_grey_level, [0.01, 0.03, 0.1], ["digits"]),
    "identifier/text": (plant_text_ids, [0.85, 0.9, 1.0], DATASETS),
}


def check_of(kind: str) -> str:
    return kind.split("/")[0]


def clean_for(kind: str, case: Case, rng: np.random.Generator) -> Case:
    """The clean counterpart of a planted case: what the same setting looks like without the leak."""
    check = check_of(kind)
    if kind == "duplicates/entered-twice":
        return small_table_of(case)
    if check == "temporal" or kind == "target-leakage/future":
        return time_split(case)
    if check == "group":
        groups = with_groups(case, 5, rng)
        return Case(case.X, case.y, group_split(case, groups, rng), {"groups": groups})
    if check == "preprocessing":
        t = StandardScaler().fit(case.X.iloc[case.splits.train])
        return Case(case.X, case.y, case.splits, {"transformers": [t]})
    return case
