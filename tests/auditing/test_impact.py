"""``audit(impact=True)``: what a finding is worth, with a bootstrap interval, in every report format."""

from __future__ import annotations

import json

import numpy as np

import audit_leaks as L
from cleanfit.auditing import audit


def _proxy_case() -> L.Case:
    # synthetic classification (a quick model scores ~0.85 on it), with a column that is the label for 97% of rows
    return L.plant_proxy(L.clean("synthetic-classification", 0), 0.03, np.random.default_rng(0))


def test_a_planted_proxy_is_worth_clearly_more_than_zero() -> None:
    case = _proxy_case()
    report = audit(case.X, case.y, case.splits, impact=True)
    (f,) = [f for f in report.by_check("target-leakage") if f.details["column"] == "leak"]
    impact = f.details["impact"]
    assert impact["metric"] == "accuracy" and impact["with"] > impact["without"] + 0.05
    low, high = impact["interval"]
    assert 0 < low <= impact["with"] - impact["without"] <= high
    assert "Impact: accuracy" in str(report) and "95% interval" in str(report)
    assert "95% interval" in report.to_html()
    assert json.loads(report.to_json())["findings"][0]["details"]["impact"]["interval"] == [low, high]


def test_a_clean_strong_feature_is_not_reported() -> None:
    # breast cancer's strongest columns predict the label well (AUC ~0.95) without being leaks
    case = L.clean("breast_cancer", 0)
    report = audit(case.X, case.y, case.splits, impact=True)
    assert not [f for f in report.findings if f.severity != "info"], str(report)
    assert all("impact" not in f.details for f in report.findings)


def test_duplicates_compare_test_rows_with_a_copy_against_those_without() -> None:
    case = L.plant_duplicates(L.clean("synthetic-regression", 0), 0.3, np.random.default_rng(0))
    (f,) = audit(case.X, case.y, case.splits, checks=["duplicates"], impact=True).findings
    impact = f.details["impact"]
    assert f.severity == "critical" and impact["metric"] == "R²"
    assert impact["with"] > impact["without"] and impact["interval"][0] > 0
    assert "with a copy in train (90)" in impact["compared"]


def test_without_impact_nothing_is_added_and_unmeasurable_findings_say_why() -> None:
    case = L.plant_label_order(L.clean("wine", 0), 1.0, np.random.default_rng(0))
    plain = audit(case.X, case.y, case.splits, checks=["label-order"])
    assert all("impact" not in f.details for f in plain.findings)
    (f,) = audit(case.X, case.y, case.splits, checks=["label-order"], impact=True).findings
    assert f.details["impact"]["with"] is None and "not measured" in f.details["impact"]["note"]


def test_a_text_id_issued_in_class_order_is_worth_what_its_order_gives() -> None:
    # "W-1" ... issued one class after the other: coded in issue order (as `identifier` reads it), not in
    # order of appearance (which a shuffled table makes meaningless), so the model can use it
    case = L.plant_text_ids(L.clean("synthetic-classification", 0), 1.0, np.random.default_rng(0))
    (f,) = audit(case.X, case.y, case.splits, checks=["identifier"], impact=True).findings
    impact = f.details["impact"]
    assert f.details["column"] == "ref" and impact["with"] > impact["without"] + 0.05
    assert impact["interval"][0] > 0
