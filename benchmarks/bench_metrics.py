"""The AUC the Trainer computes on the whole val set every epoch: ``cleanfit.training.metrics.auc`` (one sort,
tied scores sharing their average rank) against its peer, scikit-learn's ``roc_auc_score`` called the way
cleanfit called it before (float64 scores, one call per class), on the same outputs in the same run.

For N rows (default 10^6 and 10^7) of binary logits (one column, 2% of the values tied) and of 4-class logits:
seconds (best of R, default 3) and the peak of the memory allocated while it runs (``tracemalloc``, which
NumPy reports its arrays to), in bytes a row, beyond the outputs and targets themselves.
Run: ``.venv/bin/python benchmarks/bench_metrics.py [--rows 1e6 1e7] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from cleanfit.training.metrics import auc


def peer(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """What ``metrics.auc`` did before: scikit-learn on float64 scores, one-vs-rest over the classes present."""
    out, truth = outputs.numpy().astype(np.float64), targets.numpy()
    if out.shape[1] > 2:
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        present = [c for c in range(out.shape[1]) if 0 < np.sum(truth == c) < truth.size]
        return float(np.mean([roc_auc_score(truth == c, probs[:, c]) for c in present]))
    return float(roc_auc_score(truth, out.reshape(-1)))


def measure(fn, outputs: torch.Tensor, targets: torch.Tensor, repeats: int) -> tuple[float, float, float]:
    """(value, best seconds, peak bytes a row allocated during one call)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn(outputs, targets)
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn(outputs, targets)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, best, peak / len(targets)


def data(rows: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, size=rows)
    logits = rng.normal(size=(rows, 1 if classes == 2 else classes)).astype(np.float32)
    logits[:, 0] += targets == 1
    logits[rng.random(rows) < 0.02] = 0.0  # ties, as a saturated or rounded model gives
    return torch.from_numpy(logits), torch.from_numpy(targets)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.2f} at the start\n")
    print("| rows | classes | cleanfit auc s | roc_auc_score s | speed ratio | cleanfit B/row | roc_auc_score B/row "
          "| memory ratio | |difference| |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for rows in (int(r) for r in args.rows):
        for classes in (2, 4):
            outputs, targets = data(rows, classes)
            ours, ours_s, ours_b = measure(auc, outputs, targets, args.repeats)
            theirs, theirs_s, theirs_b = measure(peer, outputs, targets, args.repeats)
            print(f"| {rows:,} | {classes} | {ours_s:.2f} | {theirs_s:.2f} | {theirs_s / ours_s:.2f}x | {ours_b:.0f} "
                  f"| {theirs_b:.0f} | {ours_b / theirs_b:.2f}x | {abs(ours - theirs):.1e} |", flush=True)


if __name__ == "__main__":
    main()
