"""Copies a careful reviewer would flag, planted in scikit-learn's bundled tables at two strengths:
a few records entered twice in a small table whose other columns are coarse, and copies up to
rounding or up to one grey level. The clean originals get no new finding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import audit_leaks as L
import cleanfit as cf
from cleanfit.auditing import audit
from cleanfit.auditing.inputs import prepare
from cleanfit.auditing.rawcopies import check_raw_copies

SEV = {"critical": 2, "warning": 1, "info": 0}


def _worst(case: L.Case, check: str) -> int:
    report = audit(case.X, case.y, case.splits, checks=[check], **case.kwargs)
    return max((SEV[f.severity] for f in report.by_check(check)), default=-1)


@pytest.mark.parametrize("name, k", [("breast_cancer", 2), ("breast_cancer", 4), ("diabetes", 4), ("diabetes", 8), ("wine", 8)])
def test_a_few_records_entered_twice_are_reported(name: str, k: int) -> None:
    case = L.entered_twice(L.small_table_of(L.clean(name, 0)), k, np.random.default_rng(0))
    assert _worst(case, "duplicates") >= SEV["warning"]


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
def test_two_records_entered_twice_are_found_by_the_rarity_of_their_values(name: str) -> None:
    case = L.entered_twice(L.small_table_of(L.clean(name, 2)), 2, np.random.default_rng(2))
    (f,) = audit(case.X, case.y, case.splits, checks=["duplicates"], seed=2).findings
    assert f.severity in ("warning", "critical") and "records entered twice" in f.message, f.message
    rare = f.details["rare_values"]
    assert rare["rare_columns"] == ["amount"] and rare["coarse_columns"] == ["high", "band"] and rare["label"]
    (test,) = [t for t in rare["twins"] if t["parts"] == "train->test"]
    assert test["observed_rows"] == 2 and test["expected_by_chance"] < 0.3 and test["p_value"] < 0.01
    assert "rare_rate" in rare["statistic"] and "independent" in rare["statistic"]


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
def test_four_records_entered_twice_are_critical(name: str) -> None:
    case = L.entered_twice(L.small_table_of(L.clean(name, 1)), 4, np.random.default_rng(1))
    assert _worst(case, "duplicates") == SEV["critical"]


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_small_tables_themselves_have_no_duplicate_finding(name: str, seed: int) -> None:
    assert _worst(L.small_table_of(L.clean(name, seed)), "duplicates") < SEV["warning"]


@pytest.mark.parametrize("plant, name, share, least", [
    (L.rounded_copies, "breast_cancer", 0.03, "warning"), (L.rounded_copies, "breast_cancer", 0.2, "critical"),
    (L.rounded_copies, "wine", 0.1, "warning"), (L.rounded_copies, "wine", 0.25, "critical"),
    (L.moved_a_grey_level, "digits", 0.01, "warning"), (L.moved_a_grey_level, "digits", 0.1, "critical"),
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


def test_the_rarity_baseline_is_calibrated_on_natural_coincidences() -> None:
    # 200 tables where rows match on everything only by chance (an amount in cents from 0 to 20 repeats
    # once in 2000 pairs; about one train-test pair per table matches on every column): the
    # "entered twice" verdict must come at about its 1% level, not whenever the amount is shared
    flagged = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        X = pd.DataFrame({"flag": rng.integers(0, 2, 300), "band": rng.integers(0, 2, 300),
                          "amount": rng.integers(0, 2000, 300) / 100})
        perm = rng.permutation(300)
        parts = L.Parts(np.sort(perm[:240]), np.array([], dtype=np.int64), np.sort(perm[240:]))
        report = audit(X, rng.integers(0, 2, 300), parts, checks=["duplicates"])
        flagged += any("entered twice" in f.message for f in report.findings)
    assert flagged <= 6


def _large(kind: str, n: int = 50_000) -> L.Case:
    """50,000 rows: amounts in cents beside small measurements, or 8x8 images of 0-16 grey levels."""
    rng = np.random.default_rng(0)
    if kind == "amounts":
        X = pd.DataFrame({**{f"amount{j}": np.round(rng.uniform(10, 5000, n), 2) for j in range(4)},
                          **{f"x{j}": rng.normal(size=n) for j in range(3)}})
    else:
        X = pd.DataFrame(rng.integers(0, 17, (n, 64)).astype(np.float64), columns=[f"p{j}" for j in range(64)])
    perm = rng.permutation(n)
    return L.Case(X, rng.integers(0, 2, n), L.Parts(np.sort(perm[n // 5:]), np.array([], dtype=np.int64), np.sort(perm[:n // 5])))


def _raw(case: L.Case) -> list:
    """The raw-scale search's own findings (the check reports the stronger of it and the standardised search)."""
    data = prepare(case.X, case.y, case.splits, time=None, groups=None, transformers=(), seed=0, requested=("near-duplicates",))
    return check_raw_copies(data)


@pytest.mark.parametrize("kind, plant", [("amounts", L.rounded_copies), ("pixels", L.moved_a_grey_level)])
def test_raw_copies_are_found_in_a_table_of_fifty_thousand_rows(kind: str, plant) -> None:
    # 2% of the 10,000 test rows: far beyond the old brute-force search's 2e7 pairs
    case = _large(kind)
    assert not _raw(case)
    (f,) = _raw(plant(case, 0.02, np.random.default_rng(1)))
    (test,) = f.details["overlaps"]
    assert f.severity == "critical" and test["observed_rows"] >= 0.9 * 200 and test["expected_by_chance"] < 1
    assert f.details["held_out_rows_not_compared"] == 0


def test_rows_too_crowded_to_compare_are_said_not_skipped_silently() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.integers(0, 5, (50_000, 2)).astype(np.float64), columns=["a", "b"])
    perm = rng.permutation(50_000)
    case = L.Case(X, rng.integers(0, 2, 50_000), L.Parts(np.sort(perm[10_000:]), np.array([], dtype=np.int64), np.sort(perm[:10_000])))
    (f,) = audit(case.X, case.y, case.splits, checks=["near-duplicates"]).findings
    assert f.severity == "info" and f.details["held_out_rows_not_compared"] == 10_000
    assert "did not compare 10,000 of 10,000 held-out rows" in f.message and "5,000,000 pairs" in f.message


def test_records_entered_twice_are_judged_alike_out_of_core(tmp_path) -> None:
    # one owner of the rule: the out-of-core audit counts the pairs in SQL and takes the rates from its
    # row sample, with the in-memory functions (duplicates.natural_collisions, twins.rare_twins)
    case = L.small_table_of(L.clean("diabetes", 0))
    rng = np.random.default_rng(2)  # two of the six copies straddle the row split
    X = case.X.assign(label=case.y)
    src, dst = rng.choice(len(X), 12, replace=False).reshape(2, 6)
    X.iloc[dst] = X.iloc[src].to_numpy()
    path = tmp_path / "small.parquet"
    X.to_parquet(path)
    inside, outside = (cf.audit(str(path), "label", memory=m, sample=10**9, checks=["duplicates"]) for m in ("64GB", 0))
    assert [(f.severity, f.message) for f in inside.findings] == [(f.severity, f.message) for f in outside.findings]
    (f,) = outside.findings
    assert f.severity in ("warning", "critical") and "records entered twice" in f.message, f.message


def test_missing_values_match_missing_values_only_on_the_raw_scale() -> None:
    case = _large("amounts", n=5_000)
    X = case.X.copy()
    X.loc[X.index[::7], "amount0"] = np.nan  # a seventh of the amounts missing, copies included
    X.loc[X.index[1::7], "x0"] = np.inf
    planted = L.rounded_copies(L.Case(X, case.y, case.splits), 0.05, np.random.default_rng(1))
    assert not _raw(L.Case(X, case.y, case.splits))
    (f,) = _raw(planted)
    assert f.details["overlaps"][0]["observed_rows"] >= 45  # 50 planted; inf - inf is no difference either
