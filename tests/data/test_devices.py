from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest
import torch

import cleanfit as cf


def test_pick_device_auto_is_cpu_here_or_an_accelerator():
    device = cf.pick_device("auto")
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert device.type == expected
    assert cf.pick_device("cpu") == torch.device("cpu")


def test_pick_device_errors():
    with pytest.raises(cf.ConfigError, match="not a device"):
        cf.pick_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(cf.ConfigError, match="CUDA is not available"):
            cf.pick_device("cuda")


@dataclasses.dataclass
class _Batch:
    x: torch.Tensor
    meta: str


def test_to_device_nested():
    Pair = collections.namedtuple("Pair", "a b")
    batch = {
        "x": np.ones((2, 3), dtype=np.float32),
        "pair": Pair(torch.zeros(2), [np.arange(2), "label"]),
        "dc": _Batch(torch.ones(1), "m"),
        "n": 3,
    }
    out = cf.to_device(batch, "cpu")
    assert isinstance(out["x"], torch.Tensor) and out["x"].dtype == torch.float32
    assert isinstance(out["pair"], Pair) and isinstance(out["pair"].b[0], torch.Tensor)
    assert out["pair"].b[1] == "label" and out["n"] == 3
    assert isinstance(out["dc"], _Batch) and out["dc"].meta == "m"
    t = torch.arange(3)
    assert cf.to_device(t, "cpu") is t  # no copy when already there


def test_a_cuda_index_beyond_the_devices_present_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert cf.pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(cf.ConfigError, match="has 1 CUDA device .*cuda:0 .. cuda:0"):
        cf.pick_device("cuda:5")


def test_to_device_names_a_bad_device_and_keeps_a_defaultdict():
    with pytest.raises(cf.ConfigError, match="not a device"):
        cf.to_device(torch.zeros(2), "gpu-please")
    batch = collections.defaultdict(list, {"x": np.zeros(2, dtype=np.float32)})
    out = cf.to_device(batch, "cpu")
    assert isinstance(out, collections.defaultdict) and out.default_factory is list
    assert isinstance(out["x"], torch.Tensor)
