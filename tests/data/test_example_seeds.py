"""The per-example seeds: the batched derivation equals the scalar one, and the values never change.

A change to how an example's key is derived (or how the generators are seeded from it) would silently
change every augmentation of every run; these tests pin both.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset

import cleanfit as cf
from cleanfit.errors import DataError
from cleanfit.seeding import example_seed, example_seeds


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    epoch=st.integers(0, 10**9),
    indices=st.lists(st.integers(0, 2**48), max_size=70),
    as_array=st.booleans(),
)
def test_batched_seeds_equal_the_scalar_seeds(seed, epoch, indices, as_array):
    given_indices = np.array(indices, dtype=np.int64) if as_array else indices
    keys = example_seeds(seed, epoch, given_indices)
    assert keys == [example_seed(seed, epoch, i) for i in indices]
    assert all(type(k) is int and 0 <= k < 2**64 for k in keys)


def test_seed_values_are_pinned():
    assert [example_seed(0, 0, 0), example_seed(7, 3, 12345), example_seed(2**32 - 1, 10**6, 2**40)] == [
        12017391262430322909, 12486299407181462592, 10453824426142180476]


class _Draws(Dataset):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([random.random(), np.random.rand(), torch.rand(1).item(), cf.example_rng().random()],
                            dtype=torch.float64)


def test_what_an_example_draws_is_pinned():
    """Python's random, NumPy's global RNG, torch's and example_rng(), for (seed=5, epoch 0): fixed values."""
    first = next(iter(cf.Batches(_Draws(), 4, seed=5)))
    assert first[0].tolist() == [0.4172677349561259, 0.4854256719075043, 0.2689722180366516, 0.13714918247025099]
    assert first[3].tolist() == [0.4623637756078105, 0.2959507499758839, 0.7633920907974243, 0.9554383493964743]


class _Pairs(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((3,), i), torch.tensor(i)


def _nested_wrong(items):
    xs = torch.stack([x for x, _ in items])
    return {"inputs": [xs, xs[:1]], "labels": torch.stack([y for _, y in items])}


def test_a_collate_with_mixed_lengths_deep_inside_is_named():
    b = cf.Batches(_Pairs(), 4, collate=_nested_wrong)
    with pytest.raises(DataError, match=r"batch\['inputs'\]\[1\]: 1"):
        list(b)


def test_a_collate_with_0d_totals_and_strings_passes():
    def collate(items):
        xs = torch.stack([x for x, _ in items])
        return {"x": xs, "tokens": xs.sum(), "names": [f"n{int(y)}" for _, y in items]}

    batches = list(cf.Batches(_Pairs(), 4, collate=collate))
    assert [len(b["names"]) for b in batches] == [4, 4]


def _main_draws():
    return (random.gauss(0, 1), random.random(), np.random.normal(), np.random.rand(), torch.randn(()).item())


def test_loading_keeps_the_main_processs_cached_gaussians():
    """random.gauss and NumPy's legacy normal cache a second value: a batch loaded in between keeps both."""
    cf.seed_everything(3)
    random.gauss(0, 1), np.random.normal()  # each now holds a cached second gaussian
    expected = _main_draws()
    cf.seed_everything(3)
    random.gauss(0, 1), np.random.normal()
    list(cf.Batches(_Draws(), 4, seed=1))
    assert _main_draws() == expected
