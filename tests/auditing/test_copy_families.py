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
