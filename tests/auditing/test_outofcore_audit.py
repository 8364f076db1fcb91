"""The out-of-core audit of Parquet tables (DuckDB) against the in-memory audit of the same tables.

Real Parquet files (several files, several row groups each), a real DuckDB database, the real CLI. A table that
fits both ways is audited both ways (``memory`` large, then ``memory=0`` to force out of core, with a sample as
large as the table): the split and every finding's id, severity and message must be the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cleanfit as cf
from _cli import run_cli
from cleanfit.auditing.ooc_load import BATCH, Order
from cleanfit.auditing.ooc_scan import memory_budget, open_table
from cleanfit.data.rowsplit import RowSplit, class_counts, group_keys, random_part, row_keys, split_rows
from cleanfit.errors import ConfigError, DataError

BIG = "64GB"  # in memory
ALL = 10**9  # out of core, the model-based checks on every row


def _leaky_frame(n: int = 6000, seed: int = 0, regression: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(rng.normal(size=(n, 4)).astype("float32"), columns=["a", "b", "c", "d"])
    df["label"] = (df["a"] + rng.normal(size=n) > 0).astype(int) if not regression else df["a"] * 3 + rng.normal(size=n)
    df["proxy"] = df["label"] + rng.normal(scale=0.01, size=n)  # a target proxy
    df["patient"] = rng.integers(0, 300, n)
    df["day"] = rng.permutation(n).astype("float64")
    k = n // 30
    copies = rng.choice(n - k, k, replace=False)  # planted exact duplicates
    df.iloc[n - k:, :] = df.iloc[copies, :].to_numpy()
    return df


def _write_files(df: pd.DataFrame, folder: Path, files: int = 3, row_group: int = 700) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(df)), files)):
        pq.write_table(pa.Table.from_pandas(df.iloc[chunk].reset_index(drop=True), preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=row_group)
    return folder


def _seen(report: cf.AuditReport) -> list[tuple[str, str, str]]:
    return [(f.check, f.severity, f.message) for f in report.findings]


@pytest.mark.parametrize("kwargs", [
    {},
    {"groups": "patient"},
    {"time": "day", "groups": "patient"},
    {"splits": RowSplit("random", test=0.2, val=0.1, seed=3)},
    {"splits": RowSplit("stratify", test=0.25, val=0.1, seed=1), "time": "day"},
], ids=["stratify", "group", "time", "random-val", "stratify-time"])
def test_same_split_and_findings_in_and_out_of_memory(tmp_path: Path, kwargs: dict) -> None:
    folder = _write_files(_leaky_frame(), tmp_path / "t")
    inside = cf.audit(str(folder), "label", memory=BIG, **kwargs)
    outside = cf.audit(str(folder), "label", memory=0, sample=ALL, **kwargs)
    assert inside.sample is None and outside.sample == {"rows": 6000, "checks": outside.sample["checks"], "out_of_core": True}
    assert outside.split == inside.split and outside.split["method"].startswith("row-")
    assert _seen(outside) == _seen(inside)
    assert outside.checks == inside.checks and outside.skipped == inside.skipped
    if kwargs.get("splits") or not set(kwargs) & {"groups", "time"}:  # a group or time split keeps copies together
        assert outside.by_check("duplicates")[0].details["overlaps"][-1]["observed_rows"] > 0  # the planted copies
    assert "target-leakage" in {f.check for f in outside.findings}


def test_regression_target_and_a_glob(tmp_path: Path) -> None:
    _write_files(_leaky_frame(3000, seed=2, regression=True), tmp_path / "r", files=2)
    pattern = str(tmp_path / "r" / "*.parquet")
    inside, outside = (cf.audit(pattern, "label", memory=m, sample=ALL) for m in (BIG, 0))
    assert outside.task == inside.task == "regression" and outside.split == inside.split
    assert _seen(outside) == _seen(inside)


@pytest.mark.parametrize("test, val", [(0.29, 0.0), (0.58, 0.0), (0.35, 0.15), (0.05, 0.45)])
def test_stratified_counts_round_alike_in_sql_and_numpy(tmp_path: Path, test: float, val: float) -> None:
    # classes of 25, 50 and 90 rows: 0.29 * 50, 0.58 * 25, 0.35 * 90 are halves in decimal but not in doubles
    df = pd.DataFrame({"x": np.arange(165.0), "label": np.repeat([0, 1, 2], [25, 50, 90])})
    path = tmp_path / "t.parquet"
    df.to_parquet(path, row_group_size=40)
    spec = RowSplit("stratify", test=test, val=val, seed=4)
    inside, outside = (cf.audit(str(path), "label", spec, memory=m, checks=["duplicates"]) for m in (BIG, 0))
    assert outside.split == inside.split


def test_model_based_checks_run_on_a_stated_sample(tmp_path: Path) -> None:
    folder = _write_files(_leaky_frame(), tmp_path / "t")
    report = cf.audit(str(folder), "label", memory=0, sample=1500)
    assert 1200 < report.sample["rows"] < 1800  # a uniform sample of about 1500 rows
    assert set(report.sample["checks"]) == {"near-duplicates", "target-leakage", "identifier", "text-columns", "group"}
    assert f"{report.sample['rows']:,} rows" in str(report) and report.to_dict()["sample"] == report.sample
    assert report.n_rows == 6000
    dup = report.by_check("duplicates")[0]  # exact: counted over every row, not the sample
    assert dup.severity == "warning" and dup.details["overlaps"][0]["held_out_rows"] > 1000


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 400), seed=st.integers(0, 2**32 - 1), test=st.sampled_from([0.0, 0.1, 0.3]),
       val=st.sampled_from([0.0, 0.2]), classes=st.integers(1, 5))
def test_row_split_invariants(n: int, seed: int, test: float, val: float, classes: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    for by in ("random", "stratify", "time", "group"):
        spec = RowSplit(by, test=test, val=val, seed=seed)
        part = split_rows(spec, n, y=y, groups=y * 7, time=rng.normal(size=n))
        assert part.shape == (n,) and set(np.unique(part)) <= {0, 1, 2}
        if by == "stratify":  # exact per-class counts
            for c in np.unique(y):
                n_train, n_val = class_counts(int(np.sum(y == c)), spec)
                assert np.sum((y == c) & (part == 0)) == n_train and np.sum((y == c) & (part == 1)) == n_val
        if by == "group":  # a group never straddles two parts
            assert all(len(np.unique(part[y == c])) == 1 for c in np.unique(y))
    # chunked keys equal whole keys: the split of a row does not depend on the row group it is read in
    rows = np.arange(n)
    assert np.array_equal(np.concatenate([row_keys(rows[:n // 2], seed), row_keys(rows[n // 2:], seed)]), row_keys(rows, seed))
    assert np.array_equal(group_keys(np.array([1.0, -0.0]), seed)[1:], group_keys(np.array([0.0]), seed))


@settings(max_examples=40, deadline=None)
@given(labels=st.lists(st.integers(0, 2), min_size=1, max_size=200), cuts=st.lists(st.integers(1, 60), max_size=6))
def test_stored_order_statistics_do_not_depend_on_row_groups(labels: list[int], cuts: list[int]) -> None:
    codes = np.array(labels, dtype=np.uint64)
    times = np.cumsum(np.where(np.arange(len(codes)) % 3 == 0, -1.0, 2.0))
    order = Order()
    points = np.unique(np.minimum(np.cumsum(cuts), len(codes)))  # row-group boundaries
    for piece, t in zip(np.split(codes, points), np.split(times, points)):
        if len(piece):
            order.add(piece, t)
    full = len(codes) // BATCH
    blocks = codes[: full * BATCH].reshape(full, BATCH)
    assert order.changes == int(np.count_nonzero(codes[1:] != codes[:-1]))
    assert (order.blocks, order.pure_blocks) == (full, int(np.all(blocks == blocks[:, :1], axis=1).sum()))
    assert (order.time_back, order.time_forward) == (int(np.sum(np.diff(times) < 0)), int(np.sum(np.diff(times) > 0)))


def test_text_labels_and_missing_groups(tmp_path: Path) -> None:
    df = _leaky_frame(3000, seed=4)
    df["label"] = np.where(df["label"] > 0, "yes", "no")
    df["patient"] = df["patient"].astype("float64").where(df["patient"] % 7 != 0)  # some rows without a group
    _write_files(df, tmp_path / "t", files=2, row_group=400)
    for kwargs in ({"groups": "patient"}, {"groups": "patient", "splits": RowSplit("stratify", seed=2)}):
        inside, outside = (cf.audit(str(tmp_path / "t"), "label", memory=m, sample=ALL, **kwargs) for m in (BIG, 0))
        assert _seen(outside) == _seen(inside) and outside.split == inside.split and outside.task == "classification"


def test_integer_groups_read_as_floats_in_some_row_groups(tmp_path: Path) -> None:
    df = _leaky_frame(3000, seed=5)
    df["patient"] = pd.array(df["patient"], dtype="Int64")
    df.loc[2500:2510, "patient"] = pd.NA  # only the last row group has missing groups: pandas reads it as floats
    path = tmp_path / "t.parquet"
    df.to_parquet(path, row_group_size=500)
    inside, outside = (cf.audit(str(path), "label", groups="patient", memory=m, sample=ALL) for m in (BIG, 0))
    assert outside.split == inside.split and _seen(outside) == _seen(inside)
    assert not outside.by_check("group")  # a group split keeps every patient in one part


def test_random_part_fractions_and_determinism() -> None:
    spec = RowSplit("random", test=0.2, val=0.1, seed=5)
    part = random_part(np.arange(200_000), spec)
    shares = np.bincount(part, minlength=3) / part.size
    assert np.allclose(shares, [0.7, 0.1, 0.2], atol=0.005)
    assert np.array_equal(part, random_part(np.arange(200_000), spec))
    assert not np.array_equal(part, random_part(np.arange(200_000), RowSplit("random", test=0.2, val=0.1, seed=6)))


def test_memory_budget() -> None:
    assert memory_budget("2GB") == 2 * 10**9 and memory_budget("1.5 GiB") == int(1.5 * 2**30) and memory_budget(0) == 0
    assert 0 < memory_budget("auto")
    with pytest.raises(ConfigError, match="'lots' is not a memory size"):
        memory_budget("lots")


def test_a_file_missing_a_column_is_named(tmp_path: Path) -> None:
    folder = _write_files(_leaky_frame(1000), tmp_path / "t", files=2)
    pq.write_table(pa.Table.from_pandas(_leaky_frame(100).drop(columns=["c"]), preserve_index=False), folder / "part-9.parquet")
    with pytest.raises(DataError, match=r"part-9\.parquet: column 'c' is missing"):
        cf.audit(str(folder), "label", memory=0)


def test_a_row_group_with_an_empty_target_is_named(tmp_path: Path) -> None:
    df = _leaky_frame(1000)
    df["label"] = df["label"].astype("float64")
    df.loc[700:799, "label"] = np.nan  # one whole row group of 100 rows
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=100)
    with pytest.raises(DataError, match=r"t\.parquet \(row group 7\): the target column 'label' is empty in all 100 rows"):
        cf.audit(str(path), "label", memory=0)


def test_an_unreadable_row_group_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(_leaky_frame(2000), preserve_index=False), path, row_group_size=500,
                   compression="none")
    meta = pq.ParquetFile(path).metadata.row_group(2)
    start = meta.column(0).data_page_offset
    raw = bytearray(path.read_bytes())
    raw[start:start + 400] = b"\xff" * 400  # garble row group 2's first pages
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"t\.parquet \(row group 2\): cannot read this row group"):
        cf.audit(str(path), "label", memory=0)
    with pytest.raises(DataError, match=r"t\.parquet: cannot read the table"):
        cf.audit(str(path), "label", memory=BIG)


def test_sorted_labels_and_labels_new_in_time(tmp_path: Path) -> None:
    df = _leaky_frame(4000).sort_values("label", kind="stable").reset_index(drop=True)
    df["day"] = np.arange(len(df), dtype="float64")
    df.loc[len(df) - 150:, "label"] = 2  # a label that only the last rows have: unseen in train
    _write_files(df, tmp_path / "s", files=2, row_group=333)
    for kwargs in ({}, {"time": "day"}):
        inside, outside = (cf.audit(str(tmp_path / "s"), "label", memory=m, sample=ALL, **kwargs) for m in (BIG, 0))
        assert _seen(outside) == _seen(inside) and outside.split == inside.split
        assert outside.by_check("label-order")
    assert any("have labels train never shows (2)" in f.message for f in outside.by_check("split-shift"))


def test_open_table_reads_footers_only(tmp_path: Path) -> None:
    folder = _write_files(_leaky_frame(2100), tmp_path / "t", files=3, row_group=300)
    table = open_table(folder, ["label"])
    assert table.num_rows == 2100 and len(table.groups) == 9 and table.nbytes > 2100 * 4 * 4
    with pytest.raises(DataError, match="no column 'lable'"):
        open_table(folder, ["lable"])


def test_cli_out_of_core_progress_and_json(tmp_path: Path) -> None:
    folder = _write_files(_leaky_frame(), tmp_path / "t")
    out_json = tmp_path / "audit.json"
    code, out, err = run_cli(["audit", str(folder), "--target", "label", "--group", "patient", "--memory", "0",
                           "--json", str(out_json)])
    assert code == 1, out + err  # the planted duplicates fail the gate
    assert "rows/s" in err and "6,000 / 6,000 rows" in err  # the pass over the table, then each check
    assert "duplicates over every row" in err and "target-leakage on the row sample" in err
    payload = json.loads(out_json.read_text())
    assert payload["split"]["method"] == "row-group" and payload["sample"]["rows"] == 6000
    assert payload["split"] == cf.audit(str(folder), "label", groups="patient", memory=BIG).split


def test_cli_folder_under_the_budget_is_split_by_row_number_in_memory(tmp_path: Path) -> None:
    folder = _write_files(_leaky_frame(2000), tmp_path / "t", files=2)
    out_json = tmp_path / "audit.json"
    code, out, err = run_cli(["audit", str(folder), "--target", "label", "--checks", "duplicates,split-shift",
                           "--json", str(out_json)])
    assert code in (0, 1) and "rows/s" not in err, out + err  # in memory: no pass to report
    payload = json.loads(out_json.read_text())
    assert payload["split"] == cf.audit(str(folder), "label", memory=0, checks=["duplicates"]).split
    assert "sample" not in payload


def test_cli_bad_table_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    folder = _write_files(_leaky_frame(1000), tmp_path / "t", files=2)
    pq.write_table(pa.Table.from_pandas(_leaky_frame(100).drop(columns=["b"]), preserve_index=False), folder / "part-9.parquet")
    out_json = tmp_path / "audit.json"
    code, out, err = run_cli(["audit", str(folder), "--target", "label", "--memory", "0", "--json", str(out_json)])
    assert code == 2 and "part-9.parquet: column 'b' is missing" in err and "Traceback" not in err
    assert not out_json.exists()
