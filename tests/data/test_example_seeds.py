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


@settings(max_examples=40, deadline=None)
@given(normals=st.integers(0, 3), uniforms=st.integers(0, 700), example_normals=st.integers(0, 3))
def test_loading_keeps_numpys_main_state_after_any_draws(normals, uniforms, example_normals):
    """The main process's NumPy state is saved as its C state plus any cached gaussian: whatever was drawn
    before (odd or even normals, past a twist or not) and whatever the examples draw, the stream goes on."""

    class Normals(Dataset):
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> float:
            return float(np.random.standard_normal(example_normals).sum())

    def main_stream():
        np.random.seed(11)
        np.random.standard_normal(normals), np.random.rand(uniforms)

    main_stream()
    expected = (np.random.standard_normal(3).tolist(), np.random.rand(2).tolist())
    main_stream()
    list(cf.Batches(Normals(), 2, seed=1))
    assert (np.random.standard_normal(3).tolist(), np.random.rand(2).tolist()) == expected


def test_loading_with_another_global_bit_generator_seeds_and_restores_it():
    """np.random.set_bit_generator swaps the global RNG's bit generator: np.random.seed's own path is taken."""
    original = np.random.get_bit_generator()
    try:
        np.random.set_bit_generator(np.random.PCG64(4))
        expected = np.random.rand(3).tolist()
        np.random.set_bit_generator(np.random.PCG64(4))
        first = [b.tolist() for b in cf.Batches(_Draws(), 3, seed=2)]
        assert np.random.rand(3).tolist() == expected
        assert first == [b.tolist() for b in cf.Batches(_Draws(), 3, seed=2)]
        index = int(np.random.default_rng(2).permutation(6)[0])  # the first example of epoch 0
        as_seeded = np.random.RandomState(np.random.PCG64(example_seed(2, 0, index) & 0xFFFFFFFF)).random_sample()
        assert first[0][0][1] == as_seeded  # what np.random.seed(key) gives under a PCG64 global
    finally:
        np.random.set_bit_generator(original)


class _Swaps(Dataset):
    """Swaps NumPy's global bit generator while loading (odd, but the main process must not notice)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> float:
        value = float(np.random.rand())
        np.random.set_bit_generator(np.random.PCG64(i))
        return value


def test_an_example_that_swaps_numpys_bit_generator_changes_nothing_outside():
    original = np.random.get_bit_generator()
    try:
        np.random.seed(8)
        expected = np.random.rand(2).tolist()
        np.random.seed(8)
        first = [b.tolist() for b in cf.Batches(_Swaps(), 4, seed=0)]
        assert np.random.get_bit_generator() is original
        assert np.random.rand(2).tolist() == expected
        np.random.seed(8)
        assert [b.tolist() for b in cf.Batches(_Swaps(), 4, seed=0)] == first
    finally:
        np.random.set_bit_generator(original)
