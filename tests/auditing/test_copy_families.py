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


@pytest.mark.parametrize("name, k", [("breast_cancer", 2), ("breast_cancer", 4), ("diabetes", 4), ("diabetes", 8), ("wine", 8)])
def test_a_few_records_entered_twice_are_reported(name: str, k: int) -> None:
    case = L.entered_twice(L.small_table_of(L.clean(name, 0)), k, np.random.default_rng(0))
    assert _worst(case, "duplicates") >= SEV["warning"]


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
def test_the_small_tables_themselves_have_no_duplicate_finding(name: str) -> None:
    assert _worst(L.small_table_of(L.clean(name, 0)), "duplicates") < SEV["warning"]


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
