"""step(model, batch) -> (loss, count): accumulated padded sequences give the update of the window's token mean.

The control shows the test can fail: weighting each micro-batch by its rows (what most trainers do) gives
another update on the same data.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

import cleanfit as cf
from cleanfit.errors import TrainingError

VOCAB = 11


class Sentences(Dataset):
    """Token sequences with a long tail of lengths (1 to 9 tokens)."""

    def __init__(self, n: int = 6) -> None:
        g = torch.Generator().manual_seed(0)
        lengths = [1, 9, 2, 2, 8, 3, 1, 5][:n]
        self.seqs = [torch.randint(1, VOCAB, (length + 1,), generator=g) for length in lengths]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.seqs[i]


def pad(items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    ids = torch.nn.utils.rnn.pad_sequence([s[:-1] for s in items], batch_first=True)
    labels = torch.nn.utils.rnn.pad_sequence([s[1:] for s in items], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "labels": labels}


def model_() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(VOCAB, 8), torch.nn.Tanh(), torch.nn.Linear(8, VOCAB))


def token_step(model, batch):
    logits = model(batch["input_ids"])
    labels = batch["labels"]
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)  # mean over tokens
    return loss, (labels != -100).sum()


def _token_mean(model, batches) -> torch.Tensor:
    """The mean over every token of the concatenated batches, computed in one go."""
    logits = [model(b["input_ids"]).reshape(-1, VOCAB) for b in batches]
    labels = [b["labels"].reshape(-1) for b in batches]
    return F.cross_entropy(torch.cat(logits), torch.cat(labels), ignore_index=-100, reduction="sum") / sum(
        int((b["labels"] != -100).sum()) for b in batches)


def _by_hand(weighting: str) -> dict[str, torch.Tensor]:
    model = model_()
    batches = list(cf.Batches(Sentences(), 2, shuffle=False, collate=pad))
    if weighting == "tokens":
        loss = _token_mean(model, batches)
    else:  # rows: each micro-batch's token mean weighted by its share of the window's rows
        loss = sum(token_step(model, b)[0] * len(b["input_ids"]) / 6 for b in batches)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.5 * p.grad
    return model.state_dict()


def _trainer(model, **kwargs) -> cf.Trainer:
    return cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5), step=token_step, device="cpu",
                      precision="fp32", progress=False, report=False, **kwargs)


def test_token_weighted_accumulation_equals_the_concatenated_window():
    model = model_()
    history = _trainer(model, accumulate=3).fit(cf.Batches(Sentences(), 2, shuffle=False, collate=pad), epochs=1)
    expected, rows = _by_hand("tokens"), _by_hand("rows")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[name], rtol=0, atol=1e-6)
    assert max(float((expected[k] - rows[k]).abs().max()) for k in expected) > 1e-3  # the control differs
    start = list(cf.Batches(Sentences(), 2, shuffle=False, collate=pad))
    with torch.no_grad():
        expected_loss = float(_token_mean(model_(), start))
    assert history.epochs[0]["train_loss"] == pytest.approx(expected_loss, abs=1e-6)


def test_evaluate_and_epoch_means_are_token_means_with_a_partial_window():
    model = model_()
    trainer = _trainer(model, accumulate=2)
    data = cf.Batches(Sentences(8), 3, shuffle=False, collate=pad)  # batches of 3, 3, 2: windows of 2 and 1
    trainer.fit(data, epochs=1)
    result = trainer.evaluate(cf.Batches(Sentences(8), 3, shuffle=False, collate=pad))
    with torch.no_grad():
        expected = _token_mean(model, list(cf.Batches(Sentences(8), 8, shuffle=False, collate=pad)))
    assert result["loss"] == pytest.approx(float(expected), abs=1e-6)


def test_a_count_for_some_batches_only_or_a_bad_count_is_a_training_error():
    calls = [0]

    def sometimes(model, batch):
        calls[0] += 1
        loss, n = token_step(model, batch)
        return (loss, n) if calls[0] % 2 else loss

    model = model_()
    trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), step=sometimes, accumulate=2,
                         device="cpu", progress=False, report=False)
    with pytest.raises(TrainingError, match="for some batches and a bare loss"):
        trainer.fit(cf.Batches(Sentences(), 2, collate=pad), epochs=1)
    model = model_()
    bad = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), device="cpu", progress=False,
                     report=False, step=lambda m, b: (token_step(m, b)[0], "many"))
    with pytest.raises(TrainingError, match=r"\(mean loss, count\)"):
        bad.fit(cf.Batches(Sentences(), 2, collate=pad), epochs=1)

