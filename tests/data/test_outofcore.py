from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cleanfit as cf
from cleanfit.data.orders import BlockOrder, FeistelOrder
from cleanfit.data.batches import Batches
from cleanfit.data.outofcore import NpySource, ParquetSource, prefetch


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 100))
def test_feistel_is_a_bijection_of_range_n(n, seed, epoch):
    order = FeistelOrder(seed, epoch, n)
    values = np.concatenate([order[0 : n // 2], order[n // 2 : n]])
    assert sorted(values.tolist()) == list(range(n))


def test_feistel_differs_by_epoch_and_seed_and_is_not_the_identity():
    n = 1000
    a, b, c = FeistelOrder(0, 0, n)[0:n], FeistelOrder(0, 1, n)[0:n], FeistelOrder(1, 0, n)[0:n]
    assert not (a == b).all() and not (a == c).all() and not (a == np.arange(n)).all()


def test_feistel_at_a_billion_is_constant_memory():
    order = FeistelOrder(3, 0, 10**9)
    window = order[999_999_000 : 10**9]
    assert len(set(window.tolist())) == 1000 and window.max() < 10**9


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=12),
    buffer_blocks=st.integers(1, 5),
    seed=st.integers(0, 1000),
    epoch=st.integers(0, 10),
)
def test_block_order_is_a_permutation_within_buffers(sizes, buffer_blocks, seed, epoch):
    order = BlockOrder(seed, epoch, sizes, buffer_blocks)
    n = sum(sizes)
    values = order[0:n]
    assert sorted(values.tolist()) == list(range(n))
    pieces = np.concatenate([order[i : i + 7] for i in range(0, n, 7)])
    assert (pieces == values).all()  # slices agree with the whole


def _parquet(path, n, row_group):
    df = pd.DataFrame({"id": np.arange(n), "a": np.arange(n) * 0.5, "y": np.arange(n) % 3})
    df.to_parquet(path, row_group_size=row_group)
    return df


@pytest.mark.parametrize("shuffle", ["blocks", False])
def test_parquet_source_every_row_once_per_epoch(tmp_path, shuffle):
    _parquet(tmp_path / "d.parquet", 1000, 64)
    source = ParquetSource(tmp_path / "d.parquet", features=["id", "a"], target="y", buffer_blocks=3)
    b = Batches(source, 50, shuffle=shuffle, seed=4)
    for _ in range(2):
        ids = []
        for x, y in b:
            assert x.dtype == np.float32 and (x[:, 0].astype(int) % 3 == y).all()
            ids.extend(x[:, 0].astype(int).tolist())
        assert sorted(ids) == list(range(1000))
        if shuffle is False:
            assert ids == list(range(1000))


def test_parquet_columns_and_errors(tmp_path):
    _parquet(tmp_path / "d.parquet", 10, 4)
    batch = next(iter(Batches(ParquetSource(tmp_path / "d.parquet", columns=["id"]), 4, shuffle=False)))
    assert list(batch) == ["id"] and batch["id"].tolist() == [0, 1, 2, 3]
    with pytest.raises(cf.DataError, match="nope"):
        ParquetSource(tmp_path / "d.parquet", columns=["nope"])
    with pytest.raises(cf.DataError, match="does not exist"):
        ParquetSource(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(cf.DataError, match="bad.parquet"):
        ParquetSource(tmp_path / "bad.parquet")
    with pytest.raises(cf.DataError, match="block source"):
        Batches(np.arange(5), 2, shuffle="blocks")
    with pytest.raises(cf.DataError, match="shuffle"):
        Batches(np.arange(5), 2, shuffle="random")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 400),
    batch_size=st.integers(1, 30),
    world_size=st.integers(1, 3),
    shuffle=st.sampled_from(["feistel", "blocks"]),
    seed=st.integers(0, 99),
    data=st.data(),
)
def test_sharding_and_resume_hold_for_lazy_orders(tmp_path_factory, n, batch_size, world_size, shuffle, seed, data):
    path = tmp_path_factory.mktemp("npy") / "x.npy"
    np.save(path, np.arange(n))
    make = lambda rank: Batches(  # noqa: E731
        NpySource(path, block_rows=17, buffer_blocks=2) if shuffle == "blocks" else np.arange(n),
        batch_size, shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
    )
    shards = [[b.tolist() for b in make(r)] for r in range(world_size)]
    assert len({len(s) for s in shards}) == 1
    assert sorted(i for s in shards for b in s for i in b) == list(range(n))
    rank = data.draw(st.integers(0, world_size - 1))
    cut = data.draw(st.integers(0, len(shards[rank])))
    first = make(rank)
    it = iter(first)
    for _ in range(cut):
        next(it)
    resumed = make(rank)
    resumed.load_state_dict(first.state_dict())
    if cut < len(shards[rank]):
        expected = shards[rank][cut:]  # the rest of the epoch
    else:  # every batch was taken: the next loop is the next epoch
        following = make(rank)
        following.set_epoch(1)
        expected = [b.tolist() for b in following]
    assert [b.tolist() for b in resumed] == expected


def test_prefetch_yields_in_order_and_raises_errors():
    assert [b.tolist() for b in prefetch(Batches(np.arange(9), 4, shuffle=False), depth=2)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]

    def broken():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(prefetch(broken()))


def test_dataset_four_times_larger_than_the_memory_allowed(tmp_path):
    """A subprocess iterates a 320 MB .npy with the block shuffle; its resident memory grows by < 80 MB."""
    rows, cols = 2_500_000, 32  # 2.5M x 32 float32 = 320 MB
    path = tmp_path / "big.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, cols))
    for start in range(0, rows, 500_000):
        stop = min(rows, start + 500_000)
        out[start:stop] = np.arange(start, stop, dtype=np.float32)[:, None]
    out.flush()
    del out
    script = textwrap.dedent(
        f"""
        import numpy as np
        from cleanfit.data.batches import Batches
        from cleanfit.data.outofcore import NpySource

        def rss_kb():  # current resident set size, sampled during the loop
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

        source = NpySource({str(path)!r}, block_rows=32768, buffer_blocks=4)
        batches = Batches(source, 4096, shuffle="blocks", seed=0)
        seen = np.zeros({rows}, dtype=bool)
        base = peak = rss_kb()
        for x in batches:
            ids = x[:, 0].astype(np.int64)
            assert not seen[ids].any()
            seen[ids] = True
            peak = max(peak, rss_kb())
        print(int(seen.all()), (peak - base) / 1024)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    all_seen, grown_mb = result.stdout.split()
    assert all_seen == "1"  # every row exactly once (checked inside)
    assert float(grown_mb) < 80, f"peak RSS grew by {grown_mb} MB for 320 MB of data"
    print(f"peak RSS grew by {float(grown_mb):.1f} MB for 320 MB of data")


@pytest.mark.parametrize("fail", [False, True])
def test_prefetch_thread_ends_when_the_consumer_stops_early(fail):
    import threading

    exhausted = threading.Event()

    def source():
        yield 1
        yield 2
        exhausted.set()  # the worker asked for more: it now hands over the end (or an error)
        if fail:
            raise RuntimeError("boom")

    it = prefetch(source(), depth=1)
    assert next(it) == 1
    assert exhausted.wait(10)
    it.close()  # the consumer walks away with a full queue
    workers = [t for t in threading.enumerate() if t.name == "cleanfit-prefetch"]
    for t in workers:
        t.join(10)
    assert not any(t.is_alive() for t in workers)


def test_source_mistakes_are_caught_when_the_source_is_made_not_mid_epoch(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1.0, 2.0], "name": ["x", "y"], "y": [0, 1]}), tmp_path / "p1.parquet")
    pq.write_table(pa.table({"b": [1.0, 2.0], "name": ["x", "y"], "y": [0, 1]}), tmp_path / "p2.parquet")
    with pytest.raises(cf.DataError, match="feature column 'name' .* not numbers"):
        ParquetSource(tmp_path / "p1.parquet", features=["a", "name"], target="y")
    with pytest.raises(cf.DataError, match="\\['a'\\] are not in .*p2.parquet"):
        ParquetSource([tmp_path / "p1.parquet", tmp_path / "p2.parquet"], features=["a"], target="y")
    for bad in (0, 2.5, True):
        with pytest.raises(cf.DataError, match="buffer_blocks must be an integer"):
            ParquetSource(tmp_path / "p1.parquet", buffer_blocks=bad)
    for empty in (dict(columns=[]), dict(features=[], target="y")):
        with pytest.raises(cf.DataError, match="no columns to read"):
            ParquetSource(tmp_path / "p1.parquet", **empty)
    np.save(tmp_path / "x.npy", np.arange(30).reshape(10, 3))
    with pytest.raises(cf.DataError, match="block_rows must be an integer"):
        NpySource(tmp_path / "x.npy", block_rows=0)


def test_a_truncated_npy_file_is_refused_instead_of_read_as_garbage(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(30).reshape(10, 3))
    cut = tmp_path / "cut.npy"
    cut.write_bytes((tmp_path / "x.npy").read_bytes()[:-20])
    with pytest.raises(cf.DataError, match="cut.npy is truncated"):
        NpySource(cut, block_rows=3)
