from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, StackDataset, TensorDataset

import cleanfit as cf
from cleanfit.data.batches import Batches, batch_len, epoch_order


def _ids(batch):
    return np.asarray(batch).tolist()


def _epoch(b):
    return [_ids(batch) for batch in b]


# -- the contract's reference example ------------------------------------------------------------


def test_reference_example_holds_to_the_digit():
    X = np.arange(10).reshape(10, 1)
    y = np.arange(10)
    out = [(xb, yb) for xb, yb in cf.Batches((X, y), 4, seed=0)]
    assert [yb.tolist() for _, yb in out] == [[4, 6, 2, 7], [3, 5, 9, 0], [8, 1]]
    assert all((xb[:, 0] == yb).all() for xb, yb in out)


def test_epoch_order_is_pcg64_jumped():
    for e in range(3):
        expected = np.random.Generator(np.random.PCG64(5).jumped(e)).permutation(20)
        assert (epoch_order(5, e, 20) == expected).all()
    assert (epoch_order(5, 0, 20) == np.random.default_rng(5).permutation(20)).all()


def test_reiteration_advances_epoch_and_set_epoch_restarts():
    b = Batches(np.arange(12), 5, seed=3)
    e0, e1 = _epoch(b), _epoch(b)
    assert e0 != e1
    assert sum(e1, []) == epoch_order(3, 1, 12).tolist()
    b.set_epoch(0)
    assert _epoch(b) == e0
    assert b.epoch == 1


def test_shuffle_false_keeps_stored_order_and_drop_last():
    b = Batches(np.arange(10), 4, shuffle=False, drop_last=True)
    assert _epoch(b) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(b) == 2 and b.num_examples == 10
    assert len(Batches(np.arange(10), 4)) == 3


# -- structure and array types -------------------------------------------------------------------


def test_structures_and_types_are_kept():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    t = torch.arange(10)
    batch = next(iter(Batches({"x": x, "t": t}, 3, seed=1)))
    assert isinstance(batch["x"], np.ndarray) and isinstance(batch["t"], torch.Tensor)
    assert (batch["x"][:, 0] / 2 == batch["t"].numpy()).all()
    assert isinstance(next(iter(Batches([x, x], 3))), list)
    Pair = collections.namedtuple("Pair", "a b")
    nt = next(iter(Batches(Pair(x, t), 3)))
    assert isinstance(nt, Pair) and nt.b.shape == (3,)
    assert isinstance(next(iter(Batches(t, 4))), torch.Tensor)


def test_memmap(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(30, dtype=np.int64).reshape(15, 2))
    mm = np.load(path, mmap_mode="r")
    rows = np.concatenate(_epoch(Batches(mm, 4, seed=2)))
    assert sorted(rows[:, 0].tolist()) == list(range(0, 30, 2))


class _Squares(Dataset):
    def __init__(self, n, batched):
        self.n, self.calls = n, 0
        if batched:
            self.__getitems__ = self._getitems

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.calls += 1
        return torch.tensor(i), torch.tensor(i * i)

    def _getitems(self, indices):
        self.calls += 1
        return [(torch.tensor(i), torch.tensor(i * i)) for i in indices]


@pytest.mark.parametrize("batched", [False, True])
def test_map_style_dataset(batched):
    ds = _Squares(11, batched)
    batches = list(Batches(ds, 4, seed=0))
    idx = torch.cat([b[0] for b in batches])
    assert sorted(idx.tolist()) == list(range(11))
    assert all((b[1] == b[0] ** 2).all() for b in batches)
    assert ds.calls == (3 if batched else 11)  # one call per batch when __getitems__ exists


def test_torch_datasets():
    x, y = torch.randn(9, 3), torch.arange(9)
    for ds in (TensorDataset(x, y), StackDataset(x, y)):
        xb, yb = next(iter(Batches(ds, 4, seed=0)))
        assert torch.equal(xb, x[yb])
    assert batch_len((x, y)) == 9


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(data=np.arange(5), batch_size=0), "batch_size"),
        (dict(data=np.arange(5), batch_size=2.5), "batch_size"),
        (dict(data=(np.arange(5), np.arange(4)), batch_size=2), "different lengths"),
        (dict(data=np.arange(0), batch_size=2), "empty"),
        (dict(data={}, batch_size=2), "empty"),
        (dict(data=np.arange(5), batch_size=2, rank=2, world_size=2), "outside"),
        (dict(data=np.arange(5), batch_size=2, rank=-1, world_size=2), "outside"),
        (dict(data="abc", batch_size=2), "not supported"),
    ],
)
def test_clear_errors(kwargs, match):
    with pytest.raises(cf.DataError, match=match):
        Batches(**kwargs)


def test_loading_a_state_for_other_data_or_seed_is_refused():
    state = Batches(np.arange(10), 2, seed=1).state_dict()
    with pytest.raises(cf.DataError, match="num_examples"):
        Batches(np.arange(11), 2, seed=1).load_state_dict(state)
    with pytest.raises(cf.DataError, match="seed"):
        Batches(np.arange(10), 2, seed=2).load_state_dict(state)
    with pytest.raises(cf.DataError, match="global_batch_size"):
        Batches(np.arange(10), 3, seed=1).load_state_dict(state)


def test_rank_from_torchrun_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    b = Batches(np.arange(10), 4, seed=0)
    assert (b.rank, b.world_size, b.global_batch_size) == (1, 2, 8)
    assert _epoch(b) == [[3, 5, 9, 0], [1]]


# -- properties ----------------------------------------------------------------------------------

_shapes = dict(
    n=st.integers(1, 200),
    batch_size=st.integers(1, 40),
    world_size=st.integers(1, 5),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    epoch=st.integers(0, 50),
)


@settings(max_examples=150, deadline=None)
@given(**_shapes)
def test_every_example_once_per_epoch_on_all_ranks(n, batch_size, world_size, drop_last, shuffle, seed, epoch):
    per_rank = []
    for rank in range(world_size):
        b = Batches(np.arange(n), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last, rank=rank, world_size=world_size)
        b.set_epoch(epoch)
        batches = _epoch(b)
        assert len(batches) == len(b)
        assert all(len(batch) <= batch_size for batch in batches)
        per_rank.append(batches)
    assert len({len(batches) for batches in per_rank}) == 1  # equal counts: DDP never hangs
    seen = [i for batches in per_rank for batch in batches for i in batch]
    global_batch = batch_size * world_size
    expected = n - n % global_batch if drop_last else n
    assert len(seen) == len(set(seen)) == expected  # no duplicates, no padding
    if not drop_last:
        assert sorted(seen) == list(range(n))
    for j in range(len(per_rank[0])):  # a partial global batch is split as evenly as possible
        sizes = [len(batches[j]) for batches in per_rank]
        assert max(sizes) - min(sizes) <= 1


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 300), batch_size=st.integers(1, 16), seed=st.integers(0, 1000), epoch=st.integers(0, 5), data=st.data())
def test_global_sequence_is_independent_of_world_size(n, batch_size, seed, epoch, data):
    world_size = data.draw(st.sampled_from([w for w in (1, 2, 3, 4, 6) if batch_size * 12 % w == 0] or [1]))
    global_batch = batch_size * 12  # divisible by every world size drawn
    reference = Batches(np.arange(n), global_batch, seed=seed, world_size=1, rank=0)
    reference.set_epoch(epoch)
    expected = _epoch(reference)
    shards = []
    for rank in range(world_size):
        b = Batches(np.arange(n), global_batch // world_size, seed=seed, rank=rank, world_size=world_size)
        b.set_epoch(epoch)
        shards.append(_epoch(b))
    combined = [sum((shards[r][j] for r in range(world_size)), []) for j in range(len(expected))]
    assert combined == expected


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 120), batch_size=st.integers(1, 20), seed=st.integers(0, 99), world_size=st.integers(1, 3), data=st.data())
def test_resume_at_any_cut_equals_uninterrupted(n, batch_size, seed, world_size, data):
    rank = data.draw(st.integers(0, world_size - 1))
    make = lambda: Batches(np.arange(n), batch_size, seed=seed, rank=rank, world_size=world_size)  # noqa: E731
    uninterrupted = make()
    stream = _epoch(uninterrupted) + _epoch(uninterrupted) + _epoch(uninterrupted)
    cut = data.draw(st.integers(0, len(stream)))
    first = make()
    taken, it = [], iter(first)
    while len(taken) < cut:
        try:
            taken.append(_ids(next(it)))
        except StopIteration:
            it = iter(first)
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    rest = []
    while len(taken) + len(rest) < len(stream):
        rest.extend(_epoch(resumed))
    assert taken + rest == stream


def test_state_is_a_few_integers_and_restores_in_constant_work():
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.int8), shape=(10**9,), strides=(0,))
    b = Batches(huge, 1024, seed=0)
    state = {**b.state_dict(), "epoch": 3, "position": 500_000}
    b.load_state_dict(state)  # no permutation is computed, no loader is replayed
    assert b._order_cache is None
    assert b.state_dict()["position"] == 500_000
    assert all(isinstance(v, (int, bool)) for v in b.state_dict().values())


def test_a_loop_that_stops_after_len_batches_still_gets_the_next_epoch():
    """Lightning and other consumers stop after len(b) batches without exhausting the iterator."""
    b = Batches(np.arange(10), 4, seed=0)
    first = [next(it) for it in [iter(b)] for _ in range(len(b))]
    second = list(b)
    assert [x.tolist() for x in first] == [x.tolist() for x in Batches(np.arange(10), 4, seed=0)]
    assert sum((x.tolist() for x in second), []) == epoch_order(0, 1, 10).tolist()


# -- odd inputs ----------------------------------------------------------------------------------


def test_pandas_series_and_frames_give_numpy_batches_by_position():
    import pandas as pd

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.1, 0.2, 0.3]}, index=[30, 10, 20])
    labels = pd.Series([0, 1, 0], index=[30, 10, 20])
    (xb, yb), (xc, yc) = Batches((frame, labels), 2, shuffle=False)
    assert isinstance(xb, np.ndarray) and isinstance(yb, np.ndarray)
    assert xb.tolist() == [[1.0, 0.1], [2.0, 0.2]] and yb.tolist() == [0, 1] and yc.tolist() == [0]
    assert [b.tolist() for b in Batches(labels, 2, shuffle=False)] == [[0, 1], [0]]


@pytest.mark.parametrize("values", [[5, 6, 7, 8, 9], [0.5, 1.5, 2.5, 3.5, 4.5], ["a", "b", "c", "d", "e"],
                                    [True, False, True, True, False]])
def test_a_list_of_plain_values_is_one_column(values):
    batches = list(Batches(values, 2, seed=0))
    assert all(isinstance(b, np.ndarray) for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == sorted(values)
    assert [len(b) for b in batches] == [2, 2, 1]


def test_a_list_of_arrays_is_still_a_structure():
    x, y = np.arange(10).reshape(5, 2), np.arange(5)
    first = next(iter(Batches([x, y], 2, shuffle=False)))
    assert isinstance(first, list) and first[0].tolist() == [[0, 1], [2, 3]] and first[1].tolist() == [0, 1]


@pytest.mark.parametrize("kwargs", [dict(rank=True, world_size=2), dict(world_size=True), dict(rank=0, world_size=2.0)])
def test_booleans_and_floats_are_not_ranks_or_world_sizes(kwargs):
    with pytest.raises(cf.DataError):
        Batches(np.arange(10), 2, **kwargs)


@pytest.mark.parametrize("state", [{"epoch": 0, "position": 1.5}, {"epoch": "1", "position": "1"},
                                   {"epoch": True, "position": 0}])
def test_a_state_with_non_integer_positions_is_refused(state):
    with pytest.raises(cf.DataError, match="integer 'epoch' and 'position'"):
        Batches(np.arange(10), 3).load_state_dict(state)


def test_a_state_restored_from_a_checkpoint_with_tensor_integers_loads():
    b = Batches(np.arange(10), 3)
    b.load_state_dict({"epoch": torch.tensor(2), "position": np.int64(1)})
    assert (b.epoch, b.state_dict()["position"]) == (2, 1)


def test_set_epoch_refuses_a_bool():
    with pytest.raises(cf.DataError):
        Batches(np.arange(10), 3).set_epoch(True)


def test_a_map_style_dataset_gives_an_empty_batch_of_the_right_shape_to_a_rank_with_no_rows():
    class Named(Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"x": torch.tensor([float(i), 0.0]), "y": i, "name": f"n{i}"}

    per_rank = [list(Batches(Named(), 1, rank=r, world_size=4)) for r in range(4)]
    assert [len(batches) for batches in per_rank] == [1, 1, 1, 1]  # the same count on every rank
    (empty,) = per_rank[3]
    assert empty["x"].shape == (0, 2) and empty["y"].shape == (0,) and empty["name"] == []
    assert batch_len(empty) == 0
    (pair,) = Batches(TensorDataset(torch.arange(3.0), torch.arange(3)), 1, rank=3, world_size=4)
    assert [t.shape[0] for t in pair] == [0, 0]


def test_batch_len_counts_a_collated_column_of_strings():
    assert batch_len({"name": ["a", "b", "c"], "x": torch.zeros(3, 2)}) == 3
    assert batch_len({"name": [], "x": torch.zeros(0, 2)}) == 0
    assert batch_len((np.zeros((4, 2)), np.zeros(4))) == 4
