"""The planted-leak suite: real bundled data and synthetic data, each leak planted at several
strengths, must be found; the clean originals must pass. (Recall and false-alarm rates over more
seeds are in docs/BENCHMARKS.md, from benchmarks/bench_audit.py quality.)"""

from __future__ import annotations

import numpy as np
import pytest

import audit_leaks as L
from cleanfit.auditing import audit

SEV = {"critical": 2, "warning": 1, "info": 0}


def _worst(case: L.Case, check: str) -> int:
    report = audit(case.X, case.y, case.splits, checks=[check], **case.kwargs)
    return max((SEV[f.severity] for f in report.by_check(check)), default=-1)


# (planted kind, strength, datasets, least severity required)
CASES = [
    ("duplicates", 0.05, ["breast_cancer", "iris", "digits", "synthetic-regression"], "warning"),
    ("duplicates", 0.25, ["breast_cancer", "wine", "diabetes", "synthetic-classification"], "critical"),
    ("near-duplicates", 0.01, ["breast_cancer", "iris", "diabetes"], "warning"),
    ("near-duplicates", 0.001, ["wine", "synthetic-classification"], "critical"),
    ("target-leakage", 0.01, ["breast_cancer", "digits", "synthetic-regression"], "warning"),
    ("target-leakage", 0.003, ["wine", "iris", "diabetes", "synthetic-classification"], "critical"),
    ("target-leakage/missingness", 0.002, ["breast_cancer", "wine", "diabetes"], "critical"),
    ("target-leakage/future", 1, ["breast_cancer", "synthetic-regression"], "critical"),
    ("identifier", 0.8, ["breast_cancer", "diabetes"], "warning"),
    ("identifier", 0.9, ["wine", "synthetic-regression"], "critical"),
    ("temporal", 0.05, ["breast_cancer", "diabetes"], "critical"),
    ("group", 0.1, ["iris", "synthetic-classification"], "critical"),
    ("preprocessing", "scaler", ["breast_cancer", "diabetes"], "warning"),
    ("preprocessing", "target-encoder", ["wine", "diabetes"], "critical"),
    ("label-order", 0.8, ["breast_cancer", "digits"], "warning"),
    ("split-shift", 1.0, ["wine", "synthetic-classification"], "critical"),
]


@pytest.mark.parametrize("kind, strength, names, least", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_planted_leak_is_found(kind, strength, names, least):
    plant = L.PLANTS[kind][0]
    check = L.check_of(kind)
    for name in names:
        case = plant(L.clean(name, 0), strength, np.random.default_rng(0))
        assert _worst(case, check) >= SEV[least], f"{kind} at {strength} missed on {name}"


@pytest.mark.parametrize("kind", list(L.PLANTS))
def test_clean_counterpart_has_no_critical_finding(kind):
    check = L.check_of(kind)
    for name in ["breast_cancer", "diabetes", "synthetic-classification"]:
        if name not in L.PLANTS[kind][2]:
            continue
        case = L.clean_for(kind, L.clean(name, 1), np.random.default_rng(1))
        assert _worst(case, check) < SEV["critical"], f"false critical {check} on clean {name}"


@pytest.mark.parametrize("name", L.DATASETS)
def test_clean_originals_pass_every_check(name):
    case = L.clean(name, 0)
    report = audit(case.X, case.y, case.splits)
    assert report.passed, str(report)


def test_stored_order_of_sorted_bundled_data_is_reported():
    # iris ships sorted by class: a real instance of the label-order problem, not a planted one
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    (f,) = audit(X, y.to_numpy(), checks=["label-order"]).findings
    assert f.severity == "warning" and "sorted by label" in f.message
