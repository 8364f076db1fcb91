"""Copies a careful reviewer would flag, planted in scikit-learn's bundled tables at two strengths:
a few records entered twice in a small table whose other columns are coarse, and copies up to
rounding or up to one grey level. The clean originals get no new finding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import audit_leaks as L
from cleanfit.auditing import audit

SEV = {"critical": 2, "warning": 1, "info": 0}


def _worst(case: L.Case, check: str) -> int:
    report = audit(case.X, case.y, case.splits, checks=[check], **case.kwargs)
    return max((SEV[f.severity] for f in report.by_check(check)), default=-1)


def _small_table(name: str) -> L.Case:
    """Two coarse columns (rows repeat on them all the time) and one continuous amount from the real table."""
    case = L.clean(name, 0)
    X = case.X
    small = pd.DataFrame({"high": (X["f1"] > X["f1"].median()).astype(int), "band": pd.qcut(X["f2"], 2, labels=False),
                          "amount": X["f3"] + X["f5"] / 1000})
    return L.Case(small, case.y, case.splits)


def entered_twice(case: L.Case, k: int, rng: np.random.Generator) -> L.Case:
    """``k`` train records entered a second time, over test rows."""
    X, y = case.X.copy(), case.y.copy()
    dst = rng.choice(case.splits.test, k, replace=False)
    src = rng.choice(case.splits.train, k, replace=False)
    X.iloc[dst] = X.iloc[src].to_numpy()
    y[dst] = y[src]
    return L.Case(X, y, case.splits)


@pytest.mark.parametrize("name, k", [("breast_cancer", 2), ("breast_cancer", 4), ("diabetes", 4), ("diabetes", 8), ("wine", 8)])
def test_a_few_records_entered_twice_are_reported(name: str, k: int) -> None:
    case = entered_twice(_small_table(name), k, np.random.default_rng(0))
    assert _worst(case, "duplicates") >= SEV["warning"]


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
def test_the_small_tables_themselves_have_no_duplicate_finding(name: str) -> None:
    assert _worst(_small_table(name), "duplicates") < SEV["warning"]


def rounded_copies(case: L.Case, share: float, rng: np.random.Generator) -> L.Case:
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
    return L.Case(X, y, case.splits)


def moved_a_grey_level(case: L.Case, share: float, rng: np.random.Generator, pixels: int = 3) -> L.Case:
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
    return L.Case(X, y, case.splits)


@pytest.mark.parametrize("plant, name, share, least", [
    (rounded_copies, "breast_cancer", 0.03, "warning"), (rounded_copies, "breast_cancer", 0.2, "critical"),
    (rounded_copies, "wine", 0.1, "warning"), (rounded_copies, "wine", 0.25, "critical"),
    (moved_a_grey_level, "digits", 0.01, "warning"), (moved_a_grey_level, "digits", 0.1, "critical"),
])
def test_copies_up_to_rounding_or_a_grey_level_are_near_duplicates(plant, name: str, share: float, least: str) -> None:
    case = plant(L.clean(name, 0), share, np.random.default_rng(0))
    assert _worst(case, "near-duplicates") >= SEV[least]


@pytest.mark.parametrize("name", L.DATASETS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_bundled_tables_have_no_raw_copies(name: str, seed: int) -> None:
    case = L.clean(name, seed)
    report = audit(case.X, case.y, case.splits, checks=["near-duplicates"], seed=seed)
    assert not [f for f in report.findings if f.details.get("scale") == "raw"], str(report)
