"""Shuffled batches per second: cleanfit.Batches against torch's DataLoader, in one run.

In-memory tensors, N=200,000 examples, 32 float32 features plus int64 labels, batch 256.
Peers: ``DataLoader(TensorDataset, shuffle=True)`` (per-example fetch + collate) and the
``DataLoader(..., sampler=BatchSampler(RandomSampler), batch_size=None)`` trick (one batched fetch).
Also NumPy arrays through Batches, for reference.

    .venv/bin/python benchmarks/bench_batches.py
"""

from __future__ import annotations

import platform
import time

import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from cleanfit import Batches

N, D, B = 200_000, 32, 256


def _rate(make_iterable, *, epochs: int, repeats: int = 3) -> float:
    best = 0.0
    for _ in range(repeats):
        count, start = 0, time.perf_counter()
        for _ in range(epochs):
            for batch in make_iterable():
                count += 1
        best = max(best, count / (time.perf_counter() - start))
    return best


def main() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(N, D), torch.randint(0, 10, (N,))
    ds = TensorDataset(x, y)
    batches = Batches((x, y), B, seed=0)
    batches_np = Batches((x.numpy(), y.numpy()), B, seed=0)
    plain = DataLoader(ds, batch_size=B, shuffle=True)
    trick = DataLoader(ds, sampler=BatchSampler(RandomSampler(ds), B, drop_last=False), batch_size=None)

    rows = [
        ("cleanfit.Batches (torch tensors)", _rate(lambda: batches, epochs=3)),
        ("cleanfit.Batches (NumPy arrays)", _rate(lambda: batches_np, epochs=3)),
        ("DataLoader(BatchSampler(RandomSampler), batch_size=None)", _rate(lambda: trick, epochs=3)),
        ("DataLoader(TensorDataset, shuffle=True)", _rate(lambda: plain, epochs=1, repeats=1)),
    ]
    ours, trick_rate, plain_rate = rows[0][1], rows[2][1], rows[3][1]
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"N={N}, features={D}, batch={B}\n")
    print("| loader | batches/s | cleanfit.Batches is |")
    print("| --- | ---: | ---: |")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {ours / rate:.2f}x |")
    print(f"\ngoal: >= 30x the plain DataLoader (got {ours / plain_rate:.1f}x), >= 1.5x the BatchSampler trick (got {ours / trick_rate:.2f}x)")


if __name__ == "__main__":
    main()
