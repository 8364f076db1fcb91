from __future__ import annotations

import io
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

import cleanfit as cf


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(2).tolist(), torch.randn(1).item()


def test_same_seed_same_numbers_and_different_seed_differs():
    cf.seed_everything(11)
    a = _draw()
    cf.seed_everything(11)
    assert _draw() == a
    cf.seed_everything(12)
    assert _draw() != a


def test_rng_state_roundtrip_through_a_weights_only_checkpoint():
    cf.seed_everything(3)
    _draw()
    buffer = io.BytesIO()
    torch.save(cf.rng_state(), buffer)
    expected = _draw()
    buffer.seek(0)
    cf.set_rng_state(torch.load(buffer, weights_only=True))
    assert _draw() == expected


def test_two_processes_produce_identical_numbers():
    code = "import cleanfit as cf, torch; cf.seed_everything(5, deterministic=True); print(torch.randn(4).tolist())"
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert outs[0] == outs[1] and outs[0].strip()


def test_deterministic_mode_sets_torch_flags():
    try:
        cf.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "1", True])
def test_bad_seed(seed):
    with pytest.raises(cf.DataError, match="seed"):
        cf.seed_everything(seed)


def test_bad_state():
    with pytest.raises(cf.DataError, match="RNG state"):
        cf.set_rng_state({"python": {}})


def test_a_bad_rng_state_is_refused_and_changes_nothing():
    import copy
    import random

    cf.seed_everything(11)
    good = cf.rng_state()
    bad_numpy = copy.deepcopy(good)
    bad_numpy["numpy"]["key"] = torch.zeros(5, dtype=torch.int64)
    bad_python = {**copy.deepcopy(good), "python": {"version": 3, "internal": [1, 2], "gauss": None}}
    bad_torch = {**copy.deepcopy(good), "torch": torch.zeros(3)}
    cf.seed_everything(99)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    for bad in (bad_numpy, bad_python, bad_torch):
        cf.seed_everything(99)
        with pytest.raises(cf.DataError, match="not an RNG state"):
            cf.set_rng_state(bad)
        assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
