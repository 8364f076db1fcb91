"""The Trainer's CUDA paths: device "auto", precision "auto" -> bf16, fp16 with its scaler, and an
exact resume on the GPU (CUDA RNG for dropout included). Skipped where there is no CUDA device;
run when a GPU is lent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import cleanfit as cf

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


class Interrupted(Exception):
    pass


def _data(n=96):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 8)).astype("float32")
    return X, (X[:, 0] + X[:, 3] > 0).astype("int64")


def _trainer(directory=None, precision="auto", seed=0, **kw):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(64, 2))
    trainer = cf.Trainer(model, torch.optim.AdamW(model.parameters(), lr=1e-2), loss=F.cross_entropy,
                         precision=precision, accumulate=2, clip_grad=1.0, schedule=cf.warmup_cosine(),
                         metrics=["accuracy"], checkpoint_dir=directory,
                         checkpoint_every=3 if directory is not None else None, progress=False, report=False, **kw)
    return trainer


def _fit(trainer, resume=False):
    X, y = _data()
    return trainer.fit(cf.Batches((X, y), 8, seed=1), cf.Batches((X, y), 32, shuffle=False), epochs=3, resume=resume)


def test_auto_device_and_precision_train_on_the_gpu_in_bf16():
    trainer = _trainer()
    history = _fit(trainer)
    assert trainer.device_.type == "cuda" and next(trainer.model.parameters()).is_cuda
    assert trainer.precision_.name == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    X, y = _data()
    outputs = trainer.predict(cf.Batches((X, y), 32, shuffle=False))
    assert outputs.device.type == "cpu" and outputs.dtype == torch.float32 and outputs.shape == (96, 2)
    assert 0 <= trainer.evaluate(cf.Batches((X, y), 32, shuffle=False))["accuracy"] <= 1


def test_fp16_with_the_scaler_on_the_gpu_counts_skipped_steps():
    calls = [0]

    def loss(outputs, targets):
        calls[0] += 1
        value = F.cross_entropy(outputs.float(), targets)
        return value * 1e36 if calls[0] == 3 else value  # scaled by 65536: inf gradients, a skipped step

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss=loss, precision="fp16",
                         schedule=cf.constant(), progress=False)
    X, y = _data()
    history = trainer.fit(cf.Batches((X, y), 16, shuffle=False), epochs=1)
    assert trainer.precision_.scaler is not None and history.epochs[0]["skipped_steps"] == 1
    assert trainer.scheduler_.last_epoch == 6 - 1


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_interrupted_gpu_run_resumes_bit_identical(tmp_path, precision):
    reference = _trainer(tmp_path / "a", precision)
    history_a = _fit(reference)
    interrupted = _trainer(tmp_path / "b", precision)

    def stop(trainer, state):
        if state.step == 7:  # mid-epoch 2, one step after the step-6 checkpoint: replays a step
            raise Interrupted

    interrupted._after_step = stop
    with pytest.raises(Interrupted):
        _fit(interrupted)
    torch.cuda.manual_seed_all(123)
    resumed = _trainer(tmp_path / "b", precision, seed=9)
    history_b = _fit(resumed, resume=True)
    assert history_a == history_b
    for a, b in zip(reference.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
