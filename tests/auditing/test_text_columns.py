"""Text columns that are not features (dates as text, identifier-like text), and text ids issued in class
order, planted in scikit-learn's bundled tables at two strengths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audit_leaks as L
from cleanfit.auditing import audit
from cleanfit.data.tables import looks_like_dates, text_column_problem

SEV = {"critical": 2, "warning": 1, "info": 0}


def _worst(report, check: str) -> int:
    return max((SEV[f.severity] for f in report.by_check(check)), default=-1)


@pytest.mark.parametrize("name", ["wine", "breast_cancer", "diabetes"])
@pytest.mark.parametrize("order_kept, least", [(0.85, "warning"), (1.0, "critical")])
def test_text_ids_issued_in_class_order_are_identifier(name: str, order_kept: float, least: str) -> None:
    case = L.plant_text_ids(L.clean(name, 0), order_kept, np.random.default_rng(0))
    report = audit(case.X, case.y, case.splits)
    (f,) = [f for f in report.by_check("identifier") if f.details["column"] == "ref"]
    assert SEV[f.severity] >= SEV[least], str(report)


@pytest.mark.parametrize("name", ["wine", "diabetes"])
def test_shuffled_text_ids_are_not_identifier_leaks(name: str) -> None:
    case = L.plant_text_ids(L.clean(name, 0), 0.0, np.random.default_rng(0))
    report = audit(case.X, case.y, case.splits)
    assert _worst(report, "identifier") < SEV["warning"]
    (f,) = report.by_check("text-columns")  # still not a feature
    assert f.details == {"column": "ref", "kind": "identifier", "distinct": len(case.X), "distinct_share": 1.0}


@pytest.mark.parametrize("name", ["wine", "breast_cancer", "diabetes"])
@pytest.mark.parametrize("fmt", ["%Y-%m-%d", "%m/%d/%Y %H:%M"])
def test_dates_stored_as_text_are_named_with_the_fix(name: str, fmt: str) -> None:
    case = L.clean(name, 0)
    days = pd.date_range("2012-01-01", periods=len(case.X), freq="D").strftime(fmt)
    X = case.X.assign(date=days)
    (f,) = audit(X, case.y, case.splits).by_check("text-columns")
    assert f.severity == "warning" and f.details["kind"] == "date" and f.details["column"] == "date"
    assert "'date'" in f.message and "time='date'" in f.message and "drop" in f.message


@pytest.mark.parametrize("share", [0.6, 1.0])
def test_identifier_like_text_is_a_finding(share: float) -> None:
    case = L.clean("breast_cancer", 0)
    n = len(case.X)
    rng = np.random.default_rng(0)
    names = np.array([f"patient {i}" for i in range(n)], dtype=object)
    names[rng.random(n) > share] = "patient 0"  # repeated on the rest of the rows
    (f,) = audit(case.X.assign(Name=names), case.y, case.splits).by_check("text-columns")
    assert f.severity == "warning" and f.details["column"] == "Name" and f.details["distinct_share"] > 0.5


@pytest.mark.parametrize("name", L.DATASETS)
def test_clean_originals_and_ordinary_text_have_no_text_finding(name: str) -> None:
    case = L.clean(name, 0)
    colour = np.where(case.X.iloc[:, 0] > case.X.iloc[:, 0].median(), "red", "white")
    report = audit(case.X.assign(colour=colour), case.y, case.splits)
    assert not report.by_check("text-columns") and report.passed, str(report)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=6), min_size=1, max_size=80))
def test_words_are_never_dates(words: list[str]) -> None:
    assert not looks_like_dates(pd.Series(words))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 100), st.integers(1, 400))
def test_few_levels_are_a_feature_and_mostly_distinct_text_is_not(levels: int, n: int) -> None:
    values = pd.Series([f"v{i % levels}" for i in range(n)])
    problem = text_column_problem(values, "c")
    distinct = min(levels, n)
    assert (problem is None) == (distinct / n <= 0.5 or distinct <= 20)
