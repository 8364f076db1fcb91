"""The CUDA paths: autocast in bf16/fp16, the fp16 gradient scaler, pinned asynchronous transfers.

These need a GPU; CI has none, so they run on a lent GPU machine: ``bash scripts/device_check.sh`` runs them
with the GPU rows of the benchmarks in one short run (docs/BENCHMARKS.md, "GPU").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cleanfit as cf
from cleanfit.data.devices import pin
from cleanfit.data.outofcore import prefetch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none here")


def _data(n=512, d=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y


def _model(d=16):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(d, 64), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(64, 2))


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32", "auto"])
def test_training_on_cuda_in_every_precision(precision):
    X, y = _data()
    model = _model()
    trainer = cf.Trainer(model, torch.optim.AdamW(model.parameters(), lr=1e-2), loss=torch.nn.functional.cross_entropy,
                         device="cuda", precision=precision, accumulate=2, clip_grad=1.0,
                         schedule=cf.warmup_cosine(), metrics=["accuracy"], progress=False)
    history = trainer.fit(cf.Batches((X, y), 32, seed=1), cf.Batches((X, y), 128, shuffle=False), epochs=8)
    assert next(model.parameters()).device.type == "cuda"
    assert history.epochs[-1]["train_loss"] < history.epochs[0]["train_loss"]
    assert history.epochs[-1]["val_accuracy"] > 0.9  # 0.98 on CPU in fp32 and bf16
    if precision == "auto":
        assert trainer.precision_.name == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    if precision == "fp16":
        assert trainer.precision_.scaler is not None
    predictions = trainer.predict(cf.Batches(X, 100, shuffle=False))
    assert predictions.device.type == "cpu" and predictions.shape == (512, 2)


def test_accumulated_step_equals_concatenated_step_on_cuda():
    X, y = _data(n=40)
    results = []
    for batch_size, accumulate in ((40, 1), (16, 3)):  # 16 + 16 + 8: a partial last micro-batch
        model = _model()
        model[2].p = 0.0
        trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss=torch.nn.functional.cross_entropy,
                             device="cuda", precision="fp32", accumulate=accumulate, progress=False)
        trainer.fit(cf.Batches((X, y), batch_size, shuffle=False), epochs=1)
        results.append([p.detach().cpu() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_pinned_batches_move_asynchronously_and_intact():
    X, y = _data(n=64)
    batch = pin((torch.from_numpy(X), torch.from_numpy(y)))
    assert batch[0].is_pinned()
    moved = cf.to_device(batch, "cuda")
    torch.cuda.synchronize()
    assert moved[0].device.type == "cuda" and torch.equal(moved[0].cpu(), torch.from_numpy(X))


def test_prefetch_to_the_gpu_keeps_the_order():
    X, y = _data(n=100)
    expected = [yb.tolist() for _, yb in cf.Batches((X, y), 32, seed=3)]
    got = [yb.cpu().tolist() for _, yb in prefetch(cf.Batches((X, y), 32, seed=3), depth=2, device="cuda")]
    assert got == expected


def test_seed_everything_seeds_cuda():
    cf.seed_everything(4)
    a = torch.rand(3, device="cuda")
    cf.seed_everything(4)
    assert torch.equal(a, torch.rand(3, device="cuda"))
    state = cf.rng_state()
    b = torch.rand(3, device="cuda")
    cf.set_rng_state(state)
    assert torch.equal(b, torch.rand(3, device="cuda"))
