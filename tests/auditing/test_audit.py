"""The audit's API, inputs, report formats and each check on small hand-made data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import StandardScaler

import cleanfit as cf
from cleanfit.auditing import CHECKS, AuditReport, audit
from cleanfit.errors import DataError
from cleanfit.findings import Finding
from cleanfit.data.splits import Splits, split

from audit_leaks import Parts, random_parts


def _frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    y = (X["a"] + rng.normal(size=n) > 0).astype(int).to_numpy()
    return X, y


def test_public_name_is_callable_even_after_the_package_is_imported():
    X, y = _frame()
    report = cf.audit(X, y, random_parts(len(X)))
    assert isinstance(report, AuditReport) and report is not None
    assert cf.AuditReport is AuditReport


def test_clean_data_passes_with_every_check_listed():
    X, y = _frame()
    report = audit(X, y, random_parts(len(X)))
    assert report.passed and not [f for f in report.findings if f.severity != "info"]
    assert set(report.checks) | set(report.skipped) == set(CHECKS)
    assert report.skipped == {"temporal": "needs time", "preprocessing": "no transformers given"}


def test_without_splits_the_split_free_checks_still_run():
    X, y = _frame()
    X["leak"] = y * 2.0
    report = audit(X, y)
    assert {"target-leakage", "identifier", "label-order", "group"} <= set(report.checks)
    assert report.skipped["duplicates"] == "needs splits"
    assert [f.details["column"] for f in report.by_check("target-leakage")] == ["leak"]
    assert "all rows (no split given)" in report.by_check("target-leakage")[0].message


def test_unknown_check_id_lists_the_valid_ones():
    X, y = _frame()
    with pytest.raises(DataError) as err:
        audit(X, y, checks=["duplicates", "leaks"])
    assert "'leaks'" in str(err.value) and "near-duplicates" in str(err.value)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"time": "when"}, "no such column"),
        ({"groups": np.arange(3)}, "has 3 values"),
        ({"y": np.zeros(400)}, "single value"),
        ({"splits": Parts(np.array([0, 1]), np.array([], dtype=int), np.array([1, 2]))}, "disjoint"),
        ({"splits": Parts(np.array([0, 1000]), np.array([], dtype=int), np.array([2]))}, "outside"),
        ({"splits": object()}, ".train/.val/.test"),
    ],
)
def test_bad_inputs_raise_data_errors_that_name_the_argument(kwargs, needle):
    X, y = _frame()
    args = {"y": y, **kwargs}
    with pytest.raises(DataError, match=needle):
        audit(X, args.pop("y"), args.pop("splits", None), **args)


def test_unknown_column_suggests_close_names():
    X, y = _frame()
    X["timestamp"] = np.arange(len(X))
    with pytest.raises(DataError, match="did you mean 'timestamp'"):
        audit(X, y, time="timestamps")


def test_arrays_get_positional_column_names():
    X, y = _frame()
    arr = np.column_stack([X.to_numpy(), y * 5.0])
    report = audit(arr, y, random_parts(len(arr)), checks=["target-leakage"])
    assert report.findings[0].details["column"] == "x4"


def test_report_formats():
    X, y = _frame()
    X["leak"] = y.astype(float)
    report = audit(X, y, random_parts(len(X)))
    assert not report.passed and report.failed("critical") and report.failed("warning")
    assert not report.failed("never")
    text = str(report)
    assert "FAILED" in text and "target-leakage" in text and "'leak'" in text
    assert text.splitlines()[1].split() == ["severity", "check", "finding"]
    d = json.loads(json.dumps(report.to_dict()))
    assert d["passed"] is False and d["counts"]["critical"] >= 1
    assert d["findings"][0]["check"] == "target-leakage"
    html = report._repr_html_()
    assert "sev critical" in html and "&#x27;leak&#x27;" in html


def test_to_html_writes_a_page(tmp_path):
    X, y = _frame()
    report = audit(X, y, random_parts(len(X)))
    out = tmp_path / "audit.html"
    html = report.to_html(out)
    assert out.read_text(encoding="utf-8") == html and html.startswith("<!doctype html>")


def test_findings_are_sorted_worst_first_and_gate_levels():
    r = AuditReport([Finding("a", "info", "i"), Finding("b", "critical", "c"), Finding("c", "warning", "w")])
    assert [f.severity for f in r.findings] == ["critical", "warning", "info"]
    w = AuditReport([Finding("c", "warning", "w")])
    assert w.passed and w.failed("warning") and not w.failed("critical")
    with pytest.raises(DataError, match="fail_on"):
        w.failed("sometimes")


def test_works_with_cleanfit_splits_and_time_split():
    X, y = _frame()
    X["t"] = np.arange(len(X))
    s = split(X, test=0.2, val=0.1, by="time", time="t")
    report = audit(X, y, s, time="t")
    assert report.by_check("temporal") == []
    random = split(X, test=0.2, by="random", seed=1)
    assert audit(X, y, random, time="t").by_check("temporal")[0].severity == "critical"


def test_duplicates_at_chance_level_are_information_not_leakage():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.integers(0, 3, 2000), "b": rng.integers(0, 2, 2000)})
    y = (X["a"] > 0).astype(int).to_numpy()
    report = audit(X, y, random_parts(len(X)), checks=["duplicates"])
    (f,) = report.findings
    assert f.severity == "info" and f.details["natural_collisions"] is True
    over = f.details["overlaps"][1]
    assert over["observed_rows"] == 400 and over["expected_by_chance"] > 390


def test_conflicting_labels_are_counted():
    X, y = _frame()
    parts = random_parts(len(X))
    X.iloc[parts.test[:30]] = X.iloc[parts.train[:30]].to_numpy()
    y = y.copy()
    y[parts.test[:30]] = 1 - y[parts.train[:30]]
    (f,) = audit(X, y, parts, checks=["duplicates"]).findings
    assert f.severity == "critical" and f.details["conflicting_labels"] == 30


def test_temporal_gap_and_per_group_order():
    n = 300
    X = pd.DataFrame({"v": np.random.default_rng(0).normal(size=n), "t": np.arange(n)})
    y = np.arange(n) % 2
    parts = Parts(np.arange(200), np.array([], dtype=int), np.arange(202, n), gap=10)
    (f,) = audit(X, y, parts, time="t", checks=["temporal"]).findings
    assert f.severity == "warning" and "gap of 10 rows" in f.message and "only 2 rows" in f.message
    # per-entity time split: each group's test rows come after its train rows
    groups = np.arange(n) // 30
    t = groups * 100 + np.arange(n) % 30
    test = np.arange(n) % 30 >= 24
    per_group = Parts(np.flatnonzero(~test), np.array([], dtype=int), np.flatnonzero(test))
    X2 = pd.DataFrame({"v": X["v"], "t": t})
    (g,) = audit(X2, y, per_group, time="t", groups=groups, checks=["temporal"]).findings
    assert g.severity == "warning" and "Within each" in g.message


def test_datetime_time_column():
    n = 200
    X = pd.DataFrame({"v": np.random.default_rng(0).normal(size=n),
                      "when": pd.date_range("2024-01-01", periods=n, freq="h")})
    y = np.arange(n) % 2
    parts = random_parts(n, test=0.2, val=0.0)
    (f,) = audit(X, y, parts, time="when", checks=["temporal"]).findings
    assert f.severity == "critical" and "2024-01-" in f.message


def test_entity_key_warning_without_groups():
    rng = np.random.default_rng(0)
    n = 1000
    X = pd.DataFrame({"user": rng.integers(0, 200, n), "v": rng.normal(size=n)})
    y = rng.integers(0, 2, n)
    (f,) = audit(X, y, random_parts(n), checks=["group"]).findings
    assert f.severity == "warning" and "'user'" in f.message and f.details["straddling_share"] > 0.5
    assert audit(X, y, checks=["group"]).findings[0].severity == "warning"


def test_preprocessing_trusts_the_fit_record_and_catches_all_rows_fits():
    X, y = _frame()
    s = split(X, test=0.2, seed=0)
    good = StandardScaler()
    s.fit_transform(good, X)
    assert audit(X, y, s, transformers=[good], checks=["preprocessing"]).findings == []
    other = split(X, test=0.2, seed=1)
    (stale,) = audit(X, y, other, transformers=[good], checks=["preprocessing"]).findings
    assert stale.severity == "warning" and "fit record" in stale.message
    everything = StandardScaler().fit(X)
    (f,) = audit(X, y, s, transformers=[everything], checks=["preprocessing"]).findings
    assert f.severity == "warning" and f.details["matches"] == "all rows"
    train_only = StandardScaler().fit(X.iloc[s.train])
    assert audit(X, y, s, transformers=[train_only], checks=["preprocessing"]).findings == []
    unfitted = StandardScaler()
    assert audit(X, y, s, transformers=[unfitted], checks=["preprocessing"]).findings[0].severity == "info"


def test_regression_target_sorted_is_reported():
    rng = np.random.default_rng(0)
    y = np.sort(rng.normal(size=500))
    X = pd.DataFrame({"v": rng.normal(size=500)})
    (f,) = audit(X, y, checks=["label-order"]).findings
    assert f.severity == "warning" and "ordered by the target" in f.message


def test_unseen_categories_in_test():
    rng = np.random.default_rng(0)
    n = 500
    parts = random_parts(n, val=0.0)
    city = np.where(np.isin(np.arange(n), parts.test[:40]), "Oslo", rng.choice(["Rome", "Lima"], n))
    X = pd.DataFrame({"city": city, "v": rng.normal(size=n)})
    y = rng.integers(0, 2, n)
    (f,) = audit(X, y, parts, checks=["split-shift"]).findings
    assert "'city'" in f.message and f.details["values"] == ["Oslo"]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), copies=st.integers(0, 40))
def test_exact_duplicate_count_matches_a_set_intersection(seed, copies):
    rng = np.random.default_rng(seed)
    n = 300
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=list("abc"))
    parts = random_parts(n, seed=seed, val=0.0)
    X.iloc[parts.test[:copies]] = X.iloc[rng.choice(parts.train, copies)].to_numpy()
    report = audit(X, None, parts, checks=["duplicates"])
    train_rows = {tuple(r) for r in X.iloc[parts.train].itertuples(index=False)}
    expected = sum(tuple(r) in train_rows for r in X.iloc[parts.test].itertuples(index=False))
    observed = report.findings[0].details["overlaps"][0]["observed_rows"] if report.findings else 0
    assert observed == expected


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_audit_is_deterministic_and_never_critical_on_independent_noise(seed):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(300, 3)), columns=list("abc"))
    y = rng.integers(0, 2, 300)
    parts = random_parts(300, seed=seed)
    a, b = audit(X, y, parts, seed=seed), audit(X, y, parts, seed=seed)
    assert a.to_dict()["findings"] == b.to_dict()["findings"]
    assert a.passed


def test_splits_object_from_labels():
    X, y = _frame()
    labels = np.where(np.arange(len(X)) % 5 == 0, "test", "train")
    report = audit(X, y, Splits.from_labels(labels))
    assert report.passed


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.tuples(st.sampled_from([0.0, -0.0, 1.5, float("nan"), 2.0**60]),
                               st.integers(-3, 3) | st.just(2**62), st.sampled_from(["a", "b", None])),
                     min_size=1, max_size=40))
def test_row_keys_are_equal_exactly_for_equal_rows(rows):
    from cleanfit.auditing.overlap import hash_rows

    frame = pd.DataFrame(rows, columns=["f", "i", "s"])
    keys = hash_rows(frame)
    canon = [tuple("nan" if isinstance(v, float) and v != v else (v + 0.0 if isinstance(v, float) else v) for v in r)
             for r in frame.itertuples(index=False)]
    for a in range(len(rows)):
        for b in range(len(rows)):
            assert (keys[a] == keys[b]) == (canon[a] == canon[b])


def test_natural_neighbours_in_dense_low_dimensional_data_are_not_flagged():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(20_000, 2)), columns=["a", "b"])
    (f,) = audit(X, None, random_parts(len(X)), checks=["near-duplicates"]).findings
    assert f.severity == "info" and f.details["overlaps"][1]["observed_rows"] > 1000
    # in data where neighbours are not that close, 300 noisy copies of train rows planted in test are a leak
    Z = pd.DataFrame(rng.normal(size=(20_000, 6)), columns=list("abcdef"))
    parts = random_parts(len(Z))
    Z.iloc[parts.test[:300]] = Z.iloc[parts.train[:300]].to_numpy() + rng.normal(size=(300, 6)) * 1e-3
    (g,) = audit(Z, None, parts, checks=["near-duplicates"]).findings
    assert g.severity == "critical" and g.details["overlaps"][1]["observed_rows"] >= 250


def test_identifier_candidates_skip_date_strings_but_catch_string_ids():
    n = 400
    rng = np.random.default_rng(0)
    y = np.sort(rng.integers(0, 2, n))  # ids are handed out in label order
    X = pd.DataFrame({
        "when": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "order": [f"A{i:05d}" for i in range(n)],
        "v": rng.normal(size=n),
    })
    found = audit(X, y, random_parts(n), checks=["identifier"]).findings
    assert [f.details["column"] for f in found] == ["order"] and found[0].severity == "critical"


def test_an_index_in_label_order_is_a_warning_not_a_critical():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)  # stored sorted by species
    shuffled = X.sample(frac=1.0, random_state=0)  # keeps the old, label-ordered index
    (f,) = audit(shuffled, y.loc[shuffled.index].to_numpy(), checks=["identifier"]).findings
    assert f.severity == "warning" and f.details["column"] == "the index"
    assert audit(shuffled.reset_index(drop=True), y.loc[shuffled.index].to_numpy(), checks=["identifier"]).findings == []


def test_a_table_with_only_time_still_gets_the_temporal_check():
    X = pd.DataFrame({"t": np.arange(100)})
    report = audit(X, np.arange(100) % 2, random_parts(100), time="t")
    assert report.by_check("temporal")[0].severity == "critical" and report.n_features == 0


def test_feature_columns_of_every_pandas_kind_are_audited_without_error():
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({
        "when": pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Berlin"),  # time-zone aware
        "cat": pd.Categorical(rng.choice(["a", "b", "c"], n)),
        "obj": rng.choice(["u", "v", None], n),
        "flag": rng.random(n) > 0.5,
        "tags": [[int(i % 3), 1] for i in range(n)],  # unhashable cells
        "meta": [{"k": int(i % 2)} for i in range(n)],
        "const": 1.0,
        "allnan": np.nan,
    })
    y = np.where(rng.random(n) > 0.5, "yes", "no")
    report = audit(X, y, random_parts(n))
    assert report.passed, str(report)
    assert report.n_features == 8


def test_a_tz_aware_datetime_that_encodes_the_target_is_caught():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 2, n)
    stamp = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(y * 1000 + rng.integers(0, 10, n), unit="D")
    X = pd.DataFrame({"noise": rng.normal(size=n), "closed_at": stamp})
    report = audit(X, y, random_parts(n), checks=["target-leakage"])
    assert [f.details.get("column") for f in report.findings if f.severity == "critical"] == ["closed_at"]


def test_rows_repeated_only_through_a_frequent_missing_value_are_natural_collisions():
    # a fine-grained column that is missing in a third of the rows: the other rows are unique, the
    # missing ones collide through the coarse columns, as a random split of this data would show
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({
        "amount": np.where(rng.random(n) < 0.35, np.nan, rng.normal(size=n)),
        "kind": rng.choice(list("abc"), n),
        "flag": rng.random(n) > 0.5,
    })
    y = (rng.random(n) > 0.5).astype(int)
    report = audit(X, y, random_parts(n), checks=["duplicates"])
    assert [f.severity for f in report.findings] == ["info"], str(report)


def test_an_all_missing_column_raises_no_numpy_warning():
    import warnings

    X, y = _frame()
    X["empty"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        audit(X, y, random_parts(len(X)))


def test_time_as_text_across_a_daylight_saving_change_and_as_periods():
    X, y = _frame(n=6)
    t = ["2024-03-30T12:00:00+01:00", "2024-03-31T12:00:00+02:00", "2024-03-31T00:30:00+01:00",
         "2024-04-01T12:00:00+02:00", "2024-03-29T12:00:00+01:00", "2024-03-28T12:00:00+01:00"]
    parts = Parts(np.array([0, 1, 2, 4, 5]), np.array([], dtype=int), np.array([3]))
    report = audit(X, y, parts, time=t, checks=["temporal"])
    assert "temporal" in report.checks and report.passed
    months = pd.period_range("2024-01", periods=6, freq="M")
    report = audit(X, y, Parts(np.arange(5), np.array([], dtype=int), np.array([5])), time=months, checks=["temporal"])
    assert "temporal" in report.checks and report.passed


def test_html_states_the_verdict_once_and_keeps_check_ids_whole():
    X, y = _frame()
    X["leak"] = y.astype(float)
    report = audit(X, y, random_parts(len(X)))
    html = report.to_html()
    assert html.count("FAILED") + html.count("failed") == 1, html
    assert "400 rows, 5 features" in html and "white-space:nowrap\">target-leakage<" in html
    notebook = report._repr_html_()
    assert "400 rows, 5 features" in notebook and "<b>failed</b>" in notebook


@pytest.mark.parametrize("transformers", ["scaler", ["scaler"], [StandardScaler(), 3]])
def test_transformers_that_are_not_transformers_are_named(transformers):
    X, y = _frame()
    with pytest.raises(DataError, match="not a transformer"):
        audit(X, y, random_parts(len(X)), transformers=transformers)


@pytest.mark.parametrize("seed", [-1, 1.5, True, 2**40])
def test_a_bad_seed_is_a_data_error(seed):
    X, y = _frame()
    with pytest.raises(DataError, match="audit\\(seed="):
        audit(X, y, random_parts(len(X)), seed=seed)


@pytest.mark.parametrize("time, shown", [
    (pd.date_range("2024-03-01", periods=100, freq="h", tz="Europe/Berlin"), "(2024-03-05 02:00:00+00:00)"),
    (pd.to_timedelta(np.arange(100), unit="s"), "(0 days 00:01:39)"),
    (pd.date_range("2024-03-01", periods=100, freq="h"), "(2024-03-05 03:00:00)"),
])
def test_temporal_messages_print_times_as_the_user_gave_them(time, shown):
    X, y = _frame(n=100)
    parts = Parts(np.arange(100), np.array([], dtype=int), np.array([], dtype=int))
    parts.train, parts.test = np.arange(1, 100), np.array([0])
    report = audit(X, y, parts, time=time, checks=["temporal"])
    assert shown in report.findings[0].message, report.findings[0].message


def test_copies_above_chance_are_not_called_what_a_random_split_gives():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=["a", "b", "c"])
    X.iloc[390:396] = X.iloc[0:6].to_numpy()  # six test rows copy six train rows
    y = rng.integers(0, 2, 400)
    y[390:396] = y[0:6]
    parts = Parts(np.arange(340), np.array([], dtype=int), np.arange(340, 400))
    (f,) = audit(X, y, parts, checks=["duplicates"]).findings
    assert f.severity == "warning" and f.details["overlaps"][0]["observed_rows"] == 6
    assert "More than a random split" in f.message and "That is what" not in f.message, f.message


def test_one_shared_group_reads_in_the_singular():
    X, y = _frame(n=60)
    groups = np.arange(60) // 2  # 30 groups of two rows
    parts = Parts(np.arange(0, 49), np.array([], dtype=int), np.arange(49, 60))  # group 24 straddles
    (f,) = audit(X, y, parts, groups=groups, checks=["group"]).findings
    assert f.message.startswith("1 group of 30 in 'groups' appears in more than one part; 1 held-out row ")
    assert "row (9.1% of val+test) belongs to a group" in f.message, f.message


def test_a_time_split_of_a_trending_series_is_drift_not_a_split_to_redo():
    rng = np.random.default_rng(0)
    n = 1000
    t = np.arange(n)
    X = pd.DataFrame({"a": rng.normal(size=n), "t": t})
    by_time = split(X, by="time", time="t")
    for y in (t * 0.1 + rng.normal(size=n), (t > 500).astype(int)):
        report = audit(X, y, by_time, time="t")
        assert not [f for f in report.findings if f.severity != "info"], str(report)
        text = " ".join(f.message for f in report.findings)
        assert "Split at random" not in text and "by='stratify'" not in text
        assert "keep the time split" in text
    # the same shift under a random-looking manual split keeps its warning and its advice
    y = (t > 500).astype(int)
    parts = Parts(np.arange(0, 700), np.array([], dtype=int), np.arange(700, 1000))
    (f,) = audit(X.drop(columns="t"), y, parts, checks=["split-shift"]).findings
    assert f.severity == "warning" and "split(by='stratify'" in f.message
