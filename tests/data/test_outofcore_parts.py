"""ParquetPartSource: one part of a Parquet table (the rows of a row split), a row group at a time, transformed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanfit.data.batches import Batches
from cleanfit.data.outofcore import ParquetPartSource
from cleanfit.errors import DataError


def to_xy(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame[["row"]].to_numpy(dtype=np.float32) * 2, frame["row"].to_numpy()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 400), group=st.integers(1, 64), seed=st.integers(0, 2**16), data=st.data())
def test_each_part_holds_its_rows_in_table_order_and_the_parts_cover_the_table(tmp_path: Path, n, group, seed, data) -> None:
    path = tmp_path / f"t{n}-{group}.parquet"
    pd.DataFrame({"row": np.arange(n), "other": np.ones(n)}).to_parquet(path, row_group_size=group)
    part = np.random.default_rng(seed).choice(3, size=n, p=data.draw(st.sampled_from([(0.7, 0.1, 0.2), (1, 0, 0), (0, 0.5, 0.5)]))).astype(np.int8)
    seen = []
    for keep in range(3):
        rows = np.flatnonzero(part == keep)
        if len(rows) == 0:
            continue
        source = ParquetPartSource(path, part, keep, columns=["row"], transform=to_xy, buffer_blocks=2)
        assert len(source) == len(rows) and (source.block_sizes > 0).all()
        x, y = source.take(np.arange(len(rows))[::-1])  # any order asked for comes back in that order
        assert (y == rows[::-1]).all() and (x[:, 0] == 2 * rows[::-1]).all() and x.dtype == np.float32
        seen.append(y)
    assert sorted(np.concatenate(seen).tolist()) == list(range(n))


def test_block_shuffled_batches_see_every_row_of_the_part_once_and_resume_exactly(tmp_path: Path) -> None:
    n = 1000
    pd.DataFrame({"row": np.arange(n)}).to_parquet(tmp_path / "t.parquet", row_group_size=90)
    part = (np.arange(n) % 5 == 0).astype(np.int8)  # every fifth row is "val"
    source = ParquetPartSource(tmp_path / "t.parquet", part, 0, columns=["row"], transform=to_xy, buffer_blocks=3)
    batches = Batches(source, 32, shuffle="blocks", seed=4)
    epoch = np.concatenate([y for _, y in batches])
    assert sorted(epoch.tolist()) == np.flatnonzero(part == 0).tolist() and not (np.diff(epoch) > 0).all()
    it = iter(batches)
    for _ in range(7):
        next(it)
    state = batches.state_dict()
    rest = [y for _, y in it]
    again = Batches(ParquetPartSource(tmp_path / "t.parquet", part, 0, columns=["row"], transform=to_xy, buffer_blocks=3),
                    32, shuffle="blocks", seed=4)
    again.load_state_dict(state)
    assert all((a == b).all() for a, b in zip(rest, (y for _, y in again), strict=True))


def test_a_split_of_another_length_is_refused(tmp_path: Path) -> None:
    pd.DataFrame({"row": np.arange(10)}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="the split has 9 rows but the Parquet table has 10"):
        ParquetPartSource(tmp_path / "t.parquet", np.zeros(9, dtype=np.int8), 0, columns=["row"], transform=to_xy)
