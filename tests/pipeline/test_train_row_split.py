"""``cleanfit train`` on a Parquet table larger than ``[audit] memory``: the audit runs out of core, and the run
trains on the very split that audit checked (the row-number split), not on ``cf.split``'s."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cleanfit as cf
from _cli import run_cli
from cleanfit.data.rowsplit import DROPPED, RowSplit, class_counts, part_fingerprint, row_keys, split_rows
from cleanfit.pipeline.config import load_config
from cleanfit.pipeline.prepare import prepare


def test_train_over_the_budget_trains_on_the_audited_row_split(mlflow_tracking_uri: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 1200
    df = pd.DataFrame(rng.normal(size=(n, 3)).astype("float32"), columns=["a", "b", "c"])
    df["label"] = (df["a"] + rng.normal(size=n) > 0).astype(int)
    df.to_parquet(tmp_path / "big.parquet", row_group_size=300)
    audit_json = tmp_path / "audit.json"
    code, out, err = run_cli(["audit", str(tmp_path / "big.parquet"), "--target", "label", "--val", "0.1", "--seed", "3",
                           "--memory", "0", "--json", str(audit_json)])
    assert code == 0, out + err
    audited = json.loads(audit_json.read_text())
    assert audited["split"]["method"] == "row-stratify" and audited["sample"]["out_of_core"]

    config = tmp_path / "big.toml"
    config.write_text(f'[data]\npath = "big.parquet"\ntarget = "label"\n\n[tracking]\nuri = "{mlflow_tracking_uri}"\n')
    sets = ["train.epochs=1", "model.hidden=[8]", "split.val=0.1", "split.seed=3"]
    trained = []
    for memory in ('"0"', '"auto"'):
        train_json = tmp_path / f"train{len(trained)}.json"
        args = ["train", str(config), "--out", str(tmp_path / f"out{len(trained)}"), "--json", str(train_json)]
        code, out, err = run_cli(args + [a for s in sets + [f"audit.memory={memory}"] for a in ("--set", s)])
        assert code == 0, out + err
        trained.append(json.loads(train_json.read_text()))
    over, under = trained
    assert over["split"] == audited["split"]  # the audited split is the trained one
    assert json.loads((tmp_path / "out0" / "run.json").read_text())["split_fingerprint"] == audited["split"]["fingerprint"]
    assert under["split"]["method"] == "stratify" and under["split"]["fingerprint"] != audited["split"]["fingerprint"]


def _time_table(n: int = 600, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 2)).astype("float32"), columns=["a", "b"])
    df["t"] = rng.permutation(n) * 10  # stored out of time order: the gap is in time, not in the file
    df["label"] = (df["a"] + rng.normal(size=n) > 0).astype(int)
    return df


def test_split_gap_over_the_budget_trains_the_audited_split_and_its_gap_rows_are_in_no_part(tmp_path: Path) -> None:

    df, gap = _time_table(), 7
    df.to_parquet(tmp_path / "g.parquet", row_group_size=150)
    (tmp_path / "g.toml").write_text('[data]\npath = "g.parquet"\ntarget = "label"\ntime = "t"\n[split]\nval = 0.1\n'
                                     f'gap = {gap}\n[audit]\nmemory = "0"\n[tracking]\nbackend = "none"\n')
    code, out, err = run_cli(["train", str(tmp_path / "g.toml"), "--out", str(tmp_path / "run"), "--json",
                              str(tmp_path / "run.json"), "--set", "train.epochs=1", "--set", "model.hidden=[8]"])
    assert code == 0, out + err
    trained = json.loads((tmp_path / "run.json").read_text())
    assert trained["data"]["loading"] == "out-of-core"
    report = cf.audit(str(tmp_path / "g.parquet"), "label", splits=RowSplit("time", val=0.1, gap=gap), time="t", memory=0)
    assert report.sample["out_of_core"]
    assert trained["split"]["method"] == "row-time" and trained["split"]["fingerprint"] == report.split["fingerprint"]

    data = prepare(load_config(tmp_path / "g.toml"), run_audit=False)
    rank = np.argsort(np.argsort(df["t"].to_numpy(), kind="stable"), kind="stable")
    dropped = np.sort(rank[data.large.part == DROPPED])
    n_test, n_val = 120, 60  # 20% and 10% of 600
    first_gap = np.arange(600 - n_test - n_val - 2 * gap, 600 - n_test - n_val - gap)  # before val
    second_gap = np.arange(600 - n_test - gap, 600 - n_test)  # between val and test
    np.testing.assert_array_equal(dropped, np.r_[first_gap, second_gap])
    assert data.splits.sizes == {"train": 600 - n_test - n_val - 2 * gap, "val": n_val, "test": n_test}
    for part, size in data.splits.sizes.items():  # the blocks of each part hold its rows, none of the gap's
        source = data.large.source(part)
        assert len(source) == size == data.rows(part)
        _, y = source.take(np.arange(size))
        np.testing.assert_array_equal(y, df["label"].to_numpy()[getattr(data.splits, part)])


def test_split_gap_without_a_time_split_is_refused_over_the_budget_as_in_memory(tmp_path: Path) -> None:
    df = _time_table(300)
    df.to_parquet(tmp_path / "g.parquet", row_group_size=100)
    errors = []
    for memory in ('"0"', '"auto"'):
        (tmp_path / "g.toml").write_text('[data]\npath = "g.parquet"\ntarget = "label"\n[split]\nby = "random"\ngap = 3\n'
                                         f'[audit]\nmemory = {memory}\n[tracking]\nbackend = "none"\n')
        code, out, err = run_cli(["train", str(tmp_path / "g.toml"), "--out", str(tmp_path / "out")])
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, out + err
        errors.append(err)
    assert errors[0] == errors[1] and "gaps separate parts in time order, so they need by='time'" in errors[0]
    assert not (tmp_path / "out").exists()


def _reference_stratified(labels: np.ndarray, spec) -> np.ndarray:
    """The row split's definition, whole-table: by class, then key, then row (lexsort), cut per class."""
    n = len(labels)
    codes, _ = pd.factorize(pd.Series(labels), use_na_sentinel=True)
    order = np.lexsort((np.arange(n), row_keys(np.arange(n), spec.seed), codes))
    part = np.empty(n, dtype=np.int8)
    for code in np.unique(codes):
        rows = order[codes[order] == code]
        n_train, n_val = class_counts(len(rows), spec)
        part[rows] = np.where(np.arange(len(rows)) < n_train, 0, np.where(np.arange(len(rows)) < n_train + n_val, 1, 2))
    return part


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300), classes=st.sampled_from([1, 2, 3, 17, 40]), kind=st.sampled_from(["int", "float", "text", "bool"]),
       test=st.sampled_from([0.0, 0.2, 0.5]), val=st.sampled_from([0.0, 0.1, 0.3]), seed=st.integers(0, 2**32 - 1))
def test_the_lean_row_split_is_the_definitions_split_and_fingerprint(n, classes, kind, test, val, seed) -> None:
    rng = np.random.default_rng(seed)
    y: np.ndarray = rng.integers(-3, classes - 3, n) * 1000
    if kind == "float":
        y = y.astype(float)
        y[rng.random(n) < 0.1] = np.nan  # a missing label is a class of its own
    elif kind == "text":
        y = np.array([f"c{v}" for v in y], dtype=object)
    elif kind == "bool":
        y = y > 0
    spec = RowSplit("stratify", test=test, val=val, seed=seed)
    part = split_rows(spec, n, y=y)
    np.testing.assert_array_equal(part, _reference_stratified(y, spec))
    times = rng.integers(0, 20, n)  # ties: broken by row
    timed = split_rows(RowSplit("time", test=test, val=val), n, time=times)
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((np.arange(n), times))] = np.arange(n)
    n_train, n_val = class_counts(n, RowSplit("time", test=test, val=val))
    expected = np.where(rank < n_train, 0, np.where(rank < n_train + n_val, 1, 2))
    np.testing.assert_array_equal(timed, expected)
    for made in (part, timed):
        if (made == 0).any():
            assert part_fingerprint(made, chunk=7) == cf.Splits(*(np.flatnonzero(made == p) for p in range(3))).fingerprint


@settings(max_examples=60, deadline=None)
@given(values=st.one_of(st.lists(st.integers(-3, 40), min_size=1, max_size=60),
                        st.lists(st.booleans(), min_size=1, max_size=30),
                        st.lists(st.sampled_from(["a", "b", "ç", ""]), min_size=1, max_size=30),
                        st.lists(st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.5])), min_size=1, max_size=30),
                        st.lists(st.one_of(st.none(), st.sampled_from(["x", "y"])), min_size=1, max_size=30)),
       task=st.sampled_from(["auto", "classification", "regression"]), cut=st.integers(1, 10))
def test_the_large_targets_encoding_is_encode_targets(values, task, cut) -> None:
    import pyarrow as pa

    from cleanfit.errors import DataError
    from cleanfit.pipeline.features import encode_target
    from cleanfit.pipeline.prepare import encode_large_target

    cfg = load_config({"data": {"path": "t.parquet", "target": "y", "task": task}, "tracking": {"backend": "none"}}, [])
    kind = pa.array(values).type
    column = pa.chunked_array([pa.array(values[:cut], type=kind), pa.array(values[cut:], type=kind)], type=kind)
    try:
        expected = encode_target(pd.DataFrame({"y": column.to_pandas()}), cfg)
    except DataError as exc:
        with pytest.raises(DataError) as got:
            encode_large_target(column, cfg)
        assert str(got.value) == str(exc)
        return
    got = encode_large_target(column, cfg)
    assert (got.task, got.classes) == (expected.task, expected.classes)
    np.testing.assert_array_equal(got.values, expected.values)
    if got.task == "classification":
        assert got.values.dtype.itemsize <= 2
