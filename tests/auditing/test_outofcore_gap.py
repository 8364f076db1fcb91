"""``split.gap`` in the row split: the same rows dropped as ``cf.split(by="time", gap=k)``, in and out of memory.

Real Parquet files and a real DuckDB database; the in-memory path of ``cf.audit(path)`` uses the row split too, so
a table that fits both ways must give the same split (fingerprint) and the same findings with a gap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cleanfit as cf
from cleanfit.data.rowsplit import DROPPED, RowSplit, split_rows, time_bounds
from cleanfit.errors import DataError


@settings(max_examples=40, deadline=None)
@given(blocks=st.integers(1, 15), gap=st.integers(0, 6), val=st.sampled_from([0.0, 0.1, 0.2]),
       seed=st.integers(0, 2**32 - 1))
def test_gap_drops_what_cf_split_drops(blocks: int, gap: int, val: float, seed: int) -> None:
    # n a multiple of 20 and distinct times: both splits have the same part sizes (round vs ceil agree) and
    # cf.split's "nearest change of time" is where it aims, so the two must drop the very same rows
    n = 20 * blocks + 20
    t = np.random.default_rng(seed).permutation(n).astype(np.float64)
    part = split_rows(RowSplit("time", test=0.2, val=val, gap=gap), n, time=t)
    ref = cf.split(n, by="time", time=t, test=0.2, val=val, gap=gap)
    for code, rows in ((0, ref.train), (1, ref.val), (2, ref.test)):
        assert np.array_equal(np.flatnonzero(part == code), np.sort(rows))
    assert np.sum(part == DROPPED) == gap * (1 + (val > 0)) == n - len(ref.train) - len(ref.val) - len(ref.test)


def test_gap_bounds_and_refusals() -> None:
    assert time_bounds(10, RowSplit("time", test=0.2, val=0.2, gap=1)) == (4, 5, 7, 8)
    assert time_bounds(10, RowSplit("time", test=0.2, gap=0)) == (8, 8, 8, 8)
    with pytest.raises(DataError, match="gap=9 leaves no train rows out of 10"):
        time_bounds(10, RowSplit("time", test=0.2, gap=9))
    for by in ("random", "stratify", "group"):  # as cf.split: a gap separates parts in time order only
        with pytest.raises(DataError, match=f"split\\(by='{by}'\\) got gap=3.*need by='time'"):
            RowSplit(by, gap=3)
    with pytest.raises(DataError, match="gap is a number of rows"):
        RowSplit("time", gap=-1)
    assert RowSplit("auto", gap=2).resolved(None, time="day", groups=None) == RowSplit("time", gap=2)
    with pytest.raises(DataError, match="got gap=2"):
        RowSplit("auto", gap=2).resolved("classification", time=None, groups=None)


def _table(tmp_path: Path, n: int = 3000) -> Path:
    rng = np.random.default_rng(1)
    df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    df["day"] = rng.permutation(n).astype(np.float64)
    df["label"] = (df["a"] + rng.normal(size=n) > 0).astype(int)
    df.iloc[n - 60:, :3] = df.iloc[:60, :3].to_numpy()  # copies, so the exact checks have something to find
    folder = tmp_path / "t"
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(n), 2)):
        pq.write_table(pa.Table.from_pandas(df.iloc[rows].reset_index(drop=True), preserve_index=False),
                       folder / f"part-{i}.parquet", row_group_size=400)
    return folder


@pytest.mark.parametrize("val", [0.0, 0.15])
def test_gap_in_and_out_of_memory_give_one_split(tmp_path: Path, val: float) -> None:
    folder = _table(tmp_path)
    spec = RowSplit("time", test=0.2, val=val, gap=50)
    inside = cf.audit(str(folder), "label", spec, time="day", memory="64GB")
    outside = cf.audit(str(folder), "label", spec, time="day", memory=0, sample=10**9)
    assert inside.split == outside.split and outside.split["method"] == "row-time"
    assert [(f.check, f.severity, f.message) for f in outside.findings] == [(f.check, f.severity, f.message) for f in inside.findings]
    no_gap = cf.audit(str(folder), "label", RowSplit("time", test=0.2, val=val), time="day", memory=0, checks=["temporal"])
    assert no_gap.split["fingerprint"] != outside.split["fingerprint"]
    # the fingerprint is the one of the Splits that cf.split makes with the same gap (sizes agree at 3000 rows)
    times = pd.concat([pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))])["day"].to_numpy()
    assert outside.split["fingerprint"] == cf.split(3000, by="time", time=times, test=0.2, val=val, gap=50).fingerprint


def test_auto_split_with_a_gap_and_no_time_column_is_refused_before_the_pass(tmp_path: Path) -> None:
    folder = _table(tmp_path)
    with pytest.raises(DataError, match="got gap=5"):
        cf.audit(str(folder), "label", RowSplit("auto", gap=5), memory=0)
