"""One rank (or the single process) of test_ddp_tokens.py: padded sequences, step -> (loss, count).

    python tests/training/_ddp_tokens_worker.py OUT --batch B [--workers W]

Sequences of very different lengths, so the ranks' token counts differ in every window: the update is the
window's token mean over all ranks only if the counts are all-reduced. Writes ``OUT/result-rank<r>.pt``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn import functional as F

import cleanfit as cf

VOCAB = 13


class Sentences(torch.utils.data.Dataset):
    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        lengths = [1, 12, 2, 9, 3, 1, 7, 2, 11, 1, 4, 6, 1, 8, 2, 3, 10, 1]
        self.seqs = [torch.randint(1, VOCAB, (n + 1,), generator=g) for n in lengths]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.seqs[i]


def pad(items):
    ids = torch.nn.utils.rnn.pad_sequence([s[:-1] for s in items], batch_first=True)
    labels = torch.nn.utils.rnn.pad_sequence([s[1:] for s in items], batch_first=True, padding_value=-100)
    return {"input_ids": ids, "labels": labels}


def step(model, batch):
    logits = model(batch["input_ids"])
    labels = batch["labels"]
    return F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100), (labels != -100).sum()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(VOCAB, 8), torch.nn.Tanh(), torch.nn.Linear(8, VOCAB))
    trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5), step=step, device="cpu",
                         precision="fp32", accumulate=2, seed=0, progress=False, report=False)
    train = cf.Batches(Sentences(), args.batch, seed=3, collate=pad, workers=args.workers)
    history = trainer.fit(train, epochs=2)
    result = {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "train_loss": [row["train_loss"] for row in history.epochs],
        "evaluate": trainer.evaluate(cf.Batches(Sentences(), args.batch, shuffle=False, collate=pad))["loss"],
    }
    train.close()
    torch.save(result, Path(args.out) / f"result-rank{trainer.dist_.rank}.pt")
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
