"""Tests for cleanfit.split / cleanfit.Splits: coverage, disjointness, the group and time
guarantees, determinism, stratification, fit-on-train, and every error a user can hit."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import cleanfit as cf
from cleanfit.errors import DataError
from cleanfit.data.splits import rows_fingerprint

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
fractions = st.sampled_from([0.0, 0.01, 0.1, 0.15, 0.2, 0.25, 0.3, 1 / 3, 0.5, 0.7, 0.9])


def expected_sizes(n: int, test: float, val: float) -> tuple[int, int, int]:
    """The documented rule: a part asked for gets ceil(fraction * n) units, at least one."""
    count = lambda f: 0 if f == 0 else max(1, math.ceil(round(f * n, 9)))  # noqa: E731
    return n - count(test) - count(val), count(val), count(test)


def assert_well_formed(s: cf.Splits) -> None:
    for part in (s.train, s.val, s.test):
        assert part.dtype == np.int64 and part.ndim == 1
        assert np.all(np.diff(part) > 0)  # sorted, no repeats
    every = np.concatenate([s.train, s.val, s.test])
    assert np.unique(every).size == every.size  # disjoint


# ---------------------------------------------------------------- random


@FAST
@given(n=st.integers(1, 400), test=fractions, val=fractions, seed=st.integers(0, 2**32 - 1))
def test_random_split_covers_every_row_once_with_the_documented_sizes(n, test, val, seed):
    assume(test + val < 1)
    n_train, n_val, n_test = expected_sizes(n, test, val)
    if n_train < 1:
        with pytest.raises(DataError, match="non-empty train"):
            cf.split(n, test=test, val=val, seed=seed)
        return
    s = cf.split(n, test=test, val=val, seed=seed)
    assert_well_formed(s)
    assert (len(s.train), len(s.val), len(s.test)) == (n_train, n_val, n_test)
    assert np.array_equal(np.sort(np.concatenate([s.train, s.val, s.test])), np.arange(n))
    assert s.n_dropped == 0


@FAST
@given(n=st.integers(10, 300), seed=st.integers(0, 1000), by=st.sampled_from(["random", "group"]))
def test_same_seed_same_split_and_val_leaves_test_unchanged(n, seed, by):
    groups = np.arange(n) // 3 if by == "group" else None
    a = cf.split(n, test=0.2, val=0.2, by=by, groups=groups, seed=seed)
    b = cf.split(n, test=0.2, val=0.2, by=by, groups=groups, seed=seed)
    assert a == b and a.fingerprint == b.fingerprint
    assert np.array_equal(a.test, cf.split(n, test=0.2, by=by, groups=groups, seed=seed).test)


def test_different_seeds_give_different_splits():
    assert cf.split(1000, seed=0) != cf.split(1000, seed=1)
    y = np.arange(1000) % 3
    assert cf.split(1000, by="stratify", y=y, seed=0) != cf.split(1000, by="stratify", y=y, seed=1)


def test_data_with_len_and_dataframes_are_accepted_as_n_or_data():
    df = pd.DataFrame({"a": range(50)})
    assert cf.split(df, seed=3) == cf.split(50, seed=3) == cf.split(np.zeros((50, 2)), seed=3)
    assert cf.split(list(range(50)), seed=3) == cf.split(torch.zeros(50, 4), seed=3)


# ---------------------------------------------------------------- stratify


@st.composite
def labelled(draw):
    counts = draw(st.lists(st.integers(1, 60), min_size=1, max_size=6))
    y = np.repeat(np.array(["a", "b", "c", "d", "e", "f"])[: len(counts)], counts)
    y = np.random.default_rng(draw(st.integers(0, 100))).permutation(y)
    return y, draw(fractions), draw(fractions), draw(st.integers(0, 1000))


@FAST
@given(labelled())
def test_stratify_puts_every_class_in_every_part_in_proportion(case):
    y, test, val, seed = case
    assume(test + val < 1)
    n = len(y)
    classes, counts = np.unique(y, return_counts=True)
    sizes = dict(zip(("train", "val", "test"), expected_sizes(n, test, val)))
    parts = [name for name, size in sizes.items() if size > 0]
    feasible = (
        sizes["train"] >= 1
        and counts.min() >= len(parts)
        and all(sizes[p] >= len(classes) for p in parts)
    )
    if not feasible:
        with pytest.raises(DataError):
            cf.split(n, by="stratify", y=y, test=test, val=val, seed=seed)
        return
    s = cf.split(n, by="stratify", y=y, test=test, val=val, seed=seed)
    assert_well_formed(s)
    assert np.array_equal(np.sort(np.concatenate([s.train, s.val, s.test])), np.arange(n))
    for name in parts:
        rows = getattr(s, name)
        assert len(rows) == sizes[name]
        got = np.array([(y[rows] == c).sum() for c in classes])
        assert got.min() >= 1  # every class in every part
        ideal = counts * sizes[name] / n
        if (counts * min(sizes[p] for p in parts) / n).min() >= 3:
            # no class is so rare that its one-row minimum bends the proportions:
            # test and val are within one row of proportional, train (the rest) within two
            assert np.abs(got - ideal).max() < (2 if name == "train" else 1)


def test_stratify_keeps_the_class_mix_of_an_imbalanced_label():
    y = np.r_[np.zeros(900), np.ones(100)]
    s = cf.split(1000, by="stratify", y=y, test=0.2, val=0.1, seed=0)
    assert [y[p].sum() for p in (s.train, s.val, s.test)] == [70, 10, 20]


def test_stratify_reads_a_dataframe_column():
    df = pd.DataFrame({"x": range(40), "label": ["yes", "no"] * 20})
    s = cf.split(df, by="stratify", y="label", test=0.25, seed=1)
    assert (df.label.iloc[s.test] == "yes").sum() == 5


# ---------------------------------------------------------------- group


@FAST
@given(
    group_of=st.lists(st.integers(0, 12), min_size=1, max_size=200),
    test=fractions,
    val=fractions,
    seed=st.integers(0, 1000),
)
def test_group_split_never_puts_a_group_in_two_parts(group_of, test, val, seed):
    assume(test + val < 1)
    groups = np.array(group_of)
    n_groups = np.unique(groups).size
    n_parts = 1 + (test > 0) + (val > 0)
    g_train, g_val, g_test = expected_sizes(n_groups, test, val)
    if n_groups < n_parts or g_train < 1:
        with pytest.raises(DataError, match="groups"):
            cf.split(len(groups), by="group", groups=groups, test=test, val=val, seed=seed)
        return
    s = cf.split(len(groups), by="group", groups=groups, test=test, val=val, seed=seed)
    assert_well_formed(s)
    assert np.array_equal(np.sort(np.concatenate([s.train, s.val, s.test])), np.arange(len(groups)))
    seen = [set(groups[p]) for p in (s.train, s.val, s.test)]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert [len(g) for g in seen] == [g_train, g_val, g_test]


def test_group_split_accepts_string_groups_from_a_dataframe_column():
    df = pd.DataFrame({"patient": [f"p{i // 4}" for i in range(80)], "x": range(80)})
    s = cf.split(df, by="group", groups="patient", test=0.25, seed=0)
    assert set(df.patient.iloc[s.train]).isdisjoint(df.patient.iloc[s.test])
    assert df.patient.iloc[s.test].nunique() == 5


# ---------------------------------------------------------------- time


def _consecutive(s: cf.Splits) -> list[tuple[np.ndarray, np.ndarray]]:
    parts = [p for p in (s.train, s.val, s.test) if p.size]
    return list(zip(parts, parts[1:]))


@FAST
@given(
    times=st.lists(st.integers(0, 40), min_size=1, max_size=150),
    test=fractions,
    val=fractions,
    gap=st.integers(0, 4),
    gap_time=st.one_of(st.none(), st.integers(0, 5), st.floats(0, 5)),
)
def test_time_split_orders_parts_in_time_and_respects_gaps(times, test, val, gap, gap_time):
    assume(test + val < 1)
    t = np.array(times)
    try:
        s = cf.split(len(t), by="time", time=t, test=test, val=val, gap=gap, gap_time=gap_time)
    except DataError as error:
        # Only a request that leaves a part empty may fail.
        assert "train" in str(error) or "no rows" in str(error) or "distinct" in str(error)
        return
    assert_well_formed(s)
    assert (s.val.size > 0) == (val > 0) and (s.test.size > 0) == (test > 0)
    dropped = np.setdiff1d(np.arange(len(t)), np.concatenate([s.train, s.val, s.test]))
    assert s.n_dropped == dropped.size
    between = np.zeros(len(t), dtype=bool)
    for earlier, later in _consecutive(s):
        assert t[earlier].max() < t[later].min()  # strictly before: ties stay in one part
        if gap_time is not None:
            assert t[later].min() - t[earlier].max() > gap_time
        gap_rows = dropped[(t[dropped] >= t[earlier].max()) & (t[dropped] < t[later].min())]
        assert gap_rows.size >= gap
        between[gap_rows] = True
    # Every dropped row is a gap row, and without gap_time exactly `gap` rows fall per cut.
    assert between[dropped].all()
    if gap_time is None:
        assert dropped.size == gap * len(_consecutive(s))


@FAST
@given(n=st.integers(3, 200), test=fractions, val=fractions, seed=st.integers(0, 100))
def test_time_split_with_distinct_times_has_the_documented_sizes(n, test, val, seed):
    assume(test + val < 1)
    n_train, n_val, n_test = expected_sizes(n, test, val)
    assume(n_train >= 1)
    t = np.random.default_rng(seed).permutation(n) * 1.5
    s = cf.split(n, by="time", time=t, test=test, val=val)
    assert (len(s.train), len(s.val), len(s.test)) == (n_train, n_val, n_test)
    assert np.array_equal(np.sort(t[s.test]), np.sort(t)[n - n_test :])


def test_time_split_on_datetimes_with_a_gap_time():
    df = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=100, freq="D", tz="UTC")})
    df = df.sample(frac=1, random_state=0).reset_index(drop=True)  # stored order is not time order
    for gap_time in (dt.timedelta(days=3), np.timedelta64(3, "D"), pd.Timedelta("3D"), "3D"):
        s = cf.split(df, by="time", time="when", test=0.2, val=0.1, gap_time=gap_time)
        when = df.when
        assert when.iloc[s.val].min() - when.iloc[s.train].max() == pd.Timedelta(days=4)
        assert when.iloc[s.test].min() - when.iloc[s.val].max() == pd.Timedelta(days=4)
        assert (len(s.val), len(s.test), s.n_dropped) == (10, 20, 6)  # gaps come out of earlier rows
        assert s.to_dict()["gap_time"] == "3 days 00:00:00"


def test_time_split_keeps_equal_times_in_one_part():
    t = np.repeat([1, 2, 3, 4, 5], 20)
    s = cf.split(100, by="time", time=t, test=0.3)  # the cut at 70 moves to the change at 60 or 80
    assert set(t[s.test]).isdisjoint(t[s.train]) and len(s.test) in (20, 40)


# ---------------------------------------------------------------- Splits objects


def test_splits_wraps_user_indices_sorted_and_read_only():
    s = cf.Splits(np.array([5, 0, 2]), val=[4], test=pd.Index([3, 1]))
    assert s.train.tolist() == [0, 2, 5] and s.test.tolist() == [1, 3] and s.by == "manual"
    with pytest.raises(ValueError):
        s.train[0] = 7
    assert cf.Splits([1, 2]).val.dtype == np.int64 and cf.Splits([1, 2]).val.size == 0


def test_overlapping_parts_name_the_number_of_rows():
    with pytest.raises(DataError, match=r"3 rows are in two parts \(row 1 in train and test\)"):
        cf.Splits([0, 1, 2, 3], val=[3, 9], test=[2, 1])


@pytest.mark.parametrize(
    "train, match",
    [
        ([0, 1, 1], "twice"),
        ([-1, 2], "negative"),
        (np.array([True, False]), "boolean mask"),
        ([0.0, 1.5], "integer row indices"),
        ([[0, 1]], "1-D"),
        ([], "train part is empty"),
    ],
)
def test_bad_index_arrays_are_data_errors(train, match):
    with pytest.raises(DataError, match=match):
        cf.Splits(train, test=[7])


def test_from_labels_reads_a_column_and_names_unknown_values():
    s = cf.Splits.from_labels(pd.Series(["train", "val", "test", "train"]))
    assert (s.train.tolist(), s.val.tolist(), s.test.tolist()) == ([0, 3], [1], [2])
    assert s.by == "labels" and s.n_rows == 4
    with pytest.raises(DataError, match=r"3 labels .*'valid' \(2 rows\), None \(1 row\)"):
        cf.Splits.from_labels(["train", "valid", "valid", None, "test"])


def test_fingerprint_is_sha256_of_the_three_arrays_and_ignores_how_they_were_given():
    s = cf.Splits([3, 1], val=[0], test=[2])
    digest = hashlib.sha256()
    for name, rows in (("train", [1, 3]), ("val", [0]), ("test", [2])):
        digest.update(f"{name}:{len(rows)};".encode())
        digest.update(np.array(rows, dtype="<i8").tobytes())
    assert s.fingerprint == digest.hexdigest()
    assert s == cf.Splits.from_labels(["val", "train", "test", "train"])
    assert cf.Splits([0, 1], test=[2]).fingerprint != cf.Splits([0, 1], val=[2]).fingerprint


def test_to_dict_records_how_the_split_was_made_without_indices():
    s = cf.split(100, by="time", time=np.arange(100), test=0.2, val=0.1, gap=2, seed=7)
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d == {
        "by": "time", "seed": 7, "test": 0.2, "val": 0.1, "gap": 2, "gap_time": None,
        "n_rows": 100, "n_train": 66, "n_val": 10, "n_test": 20, "n_dropped": 4,
        "fingerprint": s.fingerprint,
    }  # fmt: skip
    assert repr(s).startswith("Splits(by='time', seed=7, train=66, val=10, test=20, dropped=4, ")


def test_take_indexes_numpy_pandas_torch_and_lists_by_position():
    s = cf.Splits([0, 3], val=[1], test=[2])
    df = pd.DataFrame({"a": [10, 11, 12, 13]}, index=[9, 8, 7, 6])
    assert s.take(df, "train").a.tolist() == [10, 13]
    assert s.take(torch.arange(4) * 2, "test").tolist() == [4]
    assert [x.tolist() for x in s.take(np.arange(4))] == [[0, 3], [1], [2]]
    assert s.take(list("abcd"), "val") == ["b"]
    with pytest.raises(DataError, match="only 3 rows"):
        s.take(np.arange(3))
    with pytest.raises(DataError, match="part='valid'"):
        s.take(np.arange(4), "valid")


# ---------------------------------------------------------------- fit_transform


def _data(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(5, 3, size=n)})
    df.loc[::7, "a"] = np.nan
    return df


@pytest.mark.parametrize("as_frame", [True, False])
def test_fit_transform_fits_a_scaler_on_train_rows_only(as_frame):
    df = _data().fillna(0.0)
    X = df if as_frame else df.to_numpy()
    s = cf.split(len(df), test=0.3, val=0.2, seed=4)
    scaler = StandardScaler()
    out = s.fit_transform(scaler, X)
    train = df.to_numpy()[s.train]
    assert np.allclose(scaler.mean_, train.mean(axis=0)) and np.allclose(scaler.scale_, train.std(axis=0))
    assert not np.allclose(scaler.mean_, df.to_numpy().mean(axis=0))
    for rows, got in zip((s.train, s.val, s.test), out):
        assert np.allclose(got, (df.to_numpy()[rows] - train.mean(axis=0)) / train.std(axis=0))
    assert scaler.cleanfit_fit_record_ == {
        "rows_fingerprint": hashlib.sha256(np.sort(s.train).astype(np.int64).tobytes()).hexdigest(),
        "n_rows": len(s.train),
        "splits_fingerprint": s.fingerprint,
    }
    assert scaler.cleanfit_fit_record_["rows_fingerprint"] == rows_fingerprint(s.train)


def test_fit_transform_fits_a_pipeline_on_train_rows_only_and_keeps_pandas_output():
    df = _data()
    s = cf.split(len(df), test=0.25, seed=1)
    pipe = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()).set_output(transform="pandas")
    X_train, X_val, X_test = s.fit_transform(pipe, df)
    train = df.iloc[s.train]
    assert np.allclose(pipe[0].statistics_, train.mean().to_numpy())
    assert np.allclose(pipe[1].mean_, train.fillna(train.mean()).mean().to_numpy())
    assert list(X_test.index) == list(df.index[s.test]) and list(X_val.columns) == ["a", "b"]
    assert X_val.shape == (0, 2)  # an empty part keeps the output's columns
    assert pipe.cleanfit_fit_record_["n_rows"] == len(s.train)


def test_fit_transform_categories_come_from_train_rows_only():
    X = pd.DataFrame({"c": ["x", "y", "x", "z"]})
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    X_train, X_val, X_test = cf.Splits([0, 1, 2], test=[3]).fit_transform(encoder, X)
    assert encoder.categories_[0].tolist() == ["x", "y"]
    assert X_test.tolist() == [[0.0, 0.0]] and X_val.shape == (0, 2)


def test_fit_transform_passes_train_targets_and_accepts_fit_plus_transform_objects():
    class CentreOnPositives:  # a minimal transformer: fit and transform, no fit_transform
        def fit(self, X, y):
            self.centre_ = X[y == 1].mean(axis=0)
            return self

        def transform(self, X):
            return X - self.centre_

    X = np.arange(10.0).reshape(5, 2)
    y = np.array([1, 0, 1, 1, 0])
    t = CentreOnPositives()
    cf.Splits([0, 1, 2], test=[3, 4]).fit_transform(t, X, y)
    assert t.centre_.tolist() == [2.0, 3.0] and t.cleanfit_fit_record_["n_rows"] == 3


def test_fit_transform_refuses_data_of_another_length():
    s = cf.split(50)
    with pytest.raises(DataError, match="49 rows but this split was made for 50"):
        s.fit_transform(StandardScaler(), np.zeros((49, 2)))


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"by": "shuffle"}, "'random', 'stratify', 'group', 'time'"),
        ({"test": 1.0}, r"test=1.0.*\[0, 1\)"),
        ({"test": -0.1}, r"\[0, 1\)"),
        ({"val": "0.1"}, r"val='0.1'"),
        ({"test": True}, r"test=True"),
        ({"test": 0.6, "val": 0.4}, "sum to 1"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"by": "stratify"}, r"by='stratify'\) needs y="),
        ({"by": "group"}, "needs groups="),
        ({"by": "time"}, "needs time="),
        ({"by": "stratify", "y": np.zeros(9)}, "9 values but the data has 10 rows"),
        ({"by": "group", "groups": np.zeros((10, 2))}, "1-D"),
        ({"by": "stratify", "y": "label"}, "not a pandas DataFrame"),
        ({"by": "stratify", "y": [0.0, np.nan] * 5}, "5 missing values"),
        ({"by": "group", "groups": [None] + [1] * 9}, "1 missing value:"),
        ({"by": "stratify", "y": [0] * 9 + [1]}, r"class 1 \(1 row\)"),
        ({"by": "stratify", "y": list(range(5)) * 2, "test": 0.3}, "test part has 3 rows but y has 5 classes"),
        ({"by": "group", "groups": [1] * 5 + [2] * 5, "val": 0.1}, "2 distinct groups but needs at least 3"),
        ({"by": "time", "time": [1.0, np.nan, np.nan] + [2.0] * 7}, "2 missing values"),
        ({"by": "time", "time": ["soon"] * 10}, "numbers or datetimes"),
        ({"by": "time", "time": [5] * 10}, "too few distinct values"),
        ({"by": "time", "time": range(10), "gap": 9}, "no rows before the test part"),
        ({"by": "time", "time": range(10), "gap": -1}, "gap=-1"),
        ({"gap": 2}, "need by='time'"),
        ({"by": "group", "groups": range(10), "gap_time": 1.0}, "need by='time'"),
        ({"by": "time", "time": range(10), "gap_time": pd.Timedelta("1D")}, "same units"),
        ({"by": "time", "time": range(10), "gap_time": -1}, "number >= 0"),
        ({"by": "time", "time": pd.date_range("2020", periods=10), "gap_time": 3}, "duration"),
        ({"by": "time", "time": pd.date_range("2020", periods=10), "gap_time": "-1D"}, "duration >= 0"),
    ],
)
def test_impossible_requests_are_data_errors(kwargs, match):
    with pytest.raises(DataError, match=match):
        cf.split(10, **kwargs)


def test_rare_classes_are_named_with_their_counts():
    y = ["a"] * 20 + ["b"] * 2 + ["c"] * 1
    with pytest.raises(DataError, match=r"3 parts \(train, val, test\).*'b' \(2 rows\), 'c' \(1 row\)"):
        cf.split(23, by="stratify", y=y, test=0.2, val=0.2)


@pytest.mark.parametrize(
    "n_or_data, match",
    [(True, "bool"), (0, "0 rows"), (object(), "row count"), (1, "non-empty train")],
)
def test_bad_n_or_data_is_a_data_error(n_or_data, match):
    with pytest.raises(DataError, match=match):
        cf.split(n_or_data)


def test_a_missing_column_lists_the_columns():
    df = pd.DataFrame({"x": range(10), "when": range(10)})
    with pytest.raises(DataError, match=r"time='date'\): no such column; the columns are 'x', 'when'"):
        cf.split(df, by="time", time="date")


def test_time_strings_across_a_daylight_saving_change_are_ordered_as_instants():
    # Berlin: +01:00 in winter, +02:00 after the clocks go forward on 2024-03-31
    t = ["2024-03-30T12:00:00+01:00", "2024-03-31T12:00:00+02:00", "2024-03-31T00:30:00+01:00",
         "2024-04-01T12:00:00+02:00", "2024-03-29T12:00:00+01:00"]
    s = cf.split(5, by="time", time=t, test=0.2)
    assert s.train.tolist() == [0, 1, 2, 4] and s.test.tolist() == [3]


def test_a_period_time_column_splits_by_its_start_times():
    months = pd.period_range("2024-01", periods=10, freq="M")
    s = cf.split(10, by="time", time=pd.Series(months[::-1]), test=0.2, gap_time=pd.Timedelta(days=1))
    assert s.test.tolist() == [0, 1] and s.train.tolist() == list(range(2, 10))


def test_fit_transform_names_an_object_that_is_not_a_transformer():
    s = cf.Splits([0, 1], test=[2])
    with pytest.raises(DataError, match="no fit\\(\\) and transform\\(\\)"):
        s.fit_transform(lambda x: x, np.zeros((3, 1)))


@pytest.mark.parametrize("call", [
    lambda s, X: s.fit_transform(StandardScaler(), X, "label"),
    lambda s, X: s.take("label"),
    lambda s, X: s.take(5),
])
def test_a_column_name_or_scalar_where_data_belongs_is_named(call):
    X = pd.DataFrame({"a": np.arange(5.0), "label": [0, 1, 0, 1, 0]})
    s = cf.Splits([0, 1, 2], test=[3, 4])
    with pytest.raises(DataError, match="where data belongs"):
        call(s, X)


@pytest.mark.parametrize("by", ["random", "stratify"])
def test_groups_given_to_a_split_that_ignores_them_warn_of_the_leak(by):
    groups = np.repeat(np.arange(10), 4)
    y = np.tile([0, 1], 20)
    with pytest.warns(cf.errors.LeakWarning, match="by='group'"):
        cf.split(40, by=by, y=y, groups=groups, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cf.split(40, by="group", groups=groups, seed=0)  # used: no warning
