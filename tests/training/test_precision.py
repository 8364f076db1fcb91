"""Precision: "auto" resolution, autocast dtypes, the fp16 scaler's skip detection and state."""

from __future__ import annotations

import pytest
import torch

import cleanfit as cf
from cleanfit.training.precision import Precision, resolve_precision


def test_auto_is_fp32_on_cpu_and_bf16_on_a_gpu_that_supports_it():
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    if torch.cuda.is_available():  # exercised when a GPU is lent
        expected = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        assert resolve_precision("auto", torch.device("cuda")) == expected
    with pytest.raises(cf.ConfigError, match="fp8"):
        resolve_precision("fp8", torch.device("cpu"))


@pytest.mark.parametrize("name, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_autocast_runs_the_forward_in_the_chosen_dtype(name, dtype):
    precision = Precision(name, torch.device("cpu"))
    layer = torch.nn.Linear(3, 2)
    with precision.autocast():
        assert layer(torch.randn(4, 3)).dtype == dtype
    assert (precision.scaler is not None) == (name == "fp16")


def _step(precision, grad_value):
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([param], lr=0.5)
    precision.backward((param * grad_value).sum())
    precision.unscale_(optimizer)
    return precision.step(optimizer), param


def test_fp16_step_reports_a_skip_on_inf_gradients_and_leaves_the_weights():
    precision = Precision("fp16", torch.device("cpu"))
    stepped, param = _step(precision, float("inf"))
    assert not stepped and torch.equal(param.detach(), torch.ones(2))
    scale = precision.state_dict()["scale"]
    stepped, param = _step(precision, 1.0)
    assert stepped and torch.equal(param.detach(), torch.full((2,), 0.5))  # unscaled: the true gradient of 1
    assert precision.state_dict()["scale"] == scale


def test_scaler_state_round_trips():
    a = Precision("fp16", torch.device("cpu"))
    _step(a, float("inf"))
    b = Precision("fp16", torch.device("cpu"))
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == a.state_dict() and b.state_dict()["scale"] == 32768.0
    assert Precision("fp32", torch.device("cpu")).state_dict() == {}
