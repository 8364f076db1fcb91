"""Gradient accumulation: k micro-batches, each weighted by its example count, give the same update
as one step on their concatenation, partial windows and partial last batches included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

import cleanfit as cf


def _run(X, y, *, batch_size, accumulate, epochs=1, optimizer="sgd"):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    opt = (torch.optim.SGD(model.parameters(), lr=0.1) if optimizer == "sgd"
           else torch.optim.AdamW(model.parameters(), lr=0.01))
    trainer = cf.Trainer(model, opt, loss=F.mse_loss, accumulate=accumulate, device="cpu", precision="fp32",
                         progress=False)
    history = trainer.fit(cf.Batches((X, y), batch_size, seed=3), epochs=epochs)
    return model, history


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 50), batch_size=st.integers(1, 8), accumulate=st.integers(1, 5))
def test_accumulated_steps_equal_steps_on_the_concatenated_batches(n, batch_size, accumulate):
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 3)).astype("float32")
    y = rng.normal(size=(n, 1)).astype("float32")
    accumulated, h1 = _run(X, y, batch_size=batch_size, accumulate=accumulate)
    # The same global order cut into batches of batch_size * accumulate: each batch is one window.
    concatenated, h2 = _run(X, y, batch_size=batch_size * accumulate, accumulate=1)
    for a, b in zip(accumulated.parameters(), concatenated.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert h1.epochs[0]["step"] == h2.epochs[0]["step"] == -(-n // (batch_size * accumulate))
    assert h1.epochs[0]["train_loss"] == pytest.approx(h2.epochs[0]["train_loss"], rel=1e-5, abs=1e-7)


def test_one_accumulated_step_equals_a_hand_written_step_on_the_whole_window():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(10, 3)).astype("float32")  # batches of 4, 4 and 2: one window of unequal parts
    y = rng.normal(size=(10, 1)).astype("float32")
    model, _ = _run(X, y, batch_size=4, accumulate=3)
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    F.mse_loss(reference(torch.from_numpy(X)), torch.from_numpy(y)).backward()
    with torch.no_grad():
        for p in reference.parameters():
            p -= 0.1 * p.grad
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_accumulation_with_adamw_over_several_epochs():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(45, 3)).astype("float32")
    y = rng.normal(size=(45, 1)).astype("float32")
    a, _ = _run(X, y, batch_size=4, accumulate=3, epochs=3, optimizer="adamw")
    b, _ = _run(X, y, batch_size=12, accumulate=1, epochs=3, optimizer="adamw")
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=1e-5)
