"""Trainer(ema=decay) against torch's AveragedModel by hand, its exact resume; Trainer(compile=...) state keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import cleanfit as cf
from cleanfit.errors import ConfigError
from cleanfit.training.checkpoints import CheckpointManager
from cleanfit.training.compiling import plain_keys

rng = np.random.default_rng(0)
X = rng.normal(size=(40, 3)).astype("float32")
Y = (X[:, 0] + X[:, 1] > 0).astype("int64")
DECAY = 0.8


def model_() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(), torch.nn.Linear(6, 2))


def _trainer(model, **kwargs) -> cf.Trainer:
    return cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9), loss=F.cross_entropy,
                      device="cpu", precision="fp32", progress=False, report=False, **kwargs)


def _train(n: int = 32) -> cf.Batches:
    return cf.Batches((X[:n], Y[:n]), 8, seed=2)


def _val() -> cf.Batches:
    return cf.Batches((X[32:], Y[32:]), 4, shuffle=False)


def test_ema_equals_averaged_model_by_hand_and_is_used_for_validation_and_predict():
    model = model_()
    trainer = _trainer(model, ema=DECAY)
    history = trainer.fit(_train(), _val(), epochs=2)

    ref = model_()
    opt = torch.optim.SGD(ref.parameters(), lr=0.3, momentum=0.9)
    average = AveragedModel(ref, multi_avg_fn=get_ema_multi_avg_fn(DECAY), use_buffers=True)
    order = cf.Batches((X[:32], Y[:32]), 8, seed=2)  # the Trainer's order: epoch 0, then epoch 1
    for _ in range(2):
        for xb, yb in list(order):
            F.cross_entropy(ref(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
            opt.step()
            opt.zero_grad()
            average.update_parameters(ref)
    for name, value in average.module.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=1e-6)  # the model holds the EMA
    raw = ref.state_dict()["0.weight"]
    assert float((raw - model.state_dict()["0.weight"]).abs().max()) > 1e-3  # and the EMA is not the raw weights
    average.module.eval()
    with torch.no_grad():
        expected_val = float(F.cross_entropy(average.module(torch.from_numpy(X[32:])), torch.from_numpy(Y[32:])))
        expected_out = average.module(torch.from_numpy(X[32:]))
    assert history.epochs[-1]["val_loss"] == pytest.approx(expected_val, abs=1e-6)
    torch.testing.assert_close(trainer.predict(_val()), expected_out, rtol=0, atol=1e-6)



class _Stop(Exception):
    pass


def test_an_ema_run_interrupted_and_resumed_ends_bit_identical(tmp_path):
    full = model_()
    _trainer(full, ema=DECAY).fit(_train(), _val(), epochs=3)

    cut = model_()
    first = _trainer(cut, ema=DECAY, checkpoint_dir=tmp_path, checkpoint_every=3)

    def stop(trainer, state):
        if state.step == 7:
            raise _Stop

    first._after_step = stop
    with pytest.raises(_Stop):
        first.fit(_train(), _val(), epochs=3)
    resumed = model_()
    _trainer(resumed, ema=DECAY, checkpoint_dir=tmp_path, checkpoint_every=3).fit(_train(), _val(), epochs=3,
                                                                                   resume=True)
    for name, value in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


def test_a_checkpoint_without_ema_is_refused_by_an_ema_resume_and_bad_decays(tmp_path):
    _trainer(model_(), checkpoint_dir=tmp_path).fit(_train(), epochs=1)
    with pytest.raises(cf.CheckpointError, match="ema_decay"):
        _trainer(model_(), ema=0.9, checkpoint_dir=tmp_path).fit(_train(), epochs=2, resume=True)
    for decay in (0, 1.0, True, "0.9"):
        with pytest.raises(ConfigError, match="decay in"):
            _trainer(model_(), ema=decay)


def test_compile_trains_like_eager_and_checkpoints_hold_plain_keys(tmp_path):
    """A real torch.compile (dynamo graph capture, the aot_eager backend: inductor's C++ build takes about a
    minute on this CPU machine, so compile=True itself is exercised on the GPU machine)."""
    plain, compiled = model_(), model_()
    _trainer(plain).fit(_train(), epochs=1)
    trainer = _trainer(compiled, compile="aot_eager", checkpoint_dir=tmp_path)
    trainer.fit(_train(), epochs=1)
    assert type(trainer.net_).__name__ == "OptimizedModule"
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(compiled.state_dict()[name], value, rtol=0, atol=1e-6)
    (checkpoint,) = tmp_path.glob("*.ckpt")
    saved = CheckpointManager(tmp_path).load(checkpoint)
    assert set(saved["model"]) == set(plain.state_dict())  # no _orig_mod. keys
    _trainer(model_(), checkpoint_dir=tmp_path).fit(_train(), epochs=2, resume=True)  # loads without compile


def test_a_compiled_modules_state_loads_into_a_plain_module():
    wrapped = torch.compile(model_(), backend="eager")
    state = wrapped.state_dict()
    assert all(key.startswith("_orig_mod.") for key in state)
    fresh = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.BatchNorm1d(6), torch.nn.Tanh(), torch.nn.Linear(6, 2))
    fresh.load_state_dict(plain_keys(state))
    assert torch.equal(fresh[0].weight, model_()[0].weight)
    with pytest.raises(ConfigError, match="torch.compile backend"):
        _trainer(model_(), compile="fastest")
