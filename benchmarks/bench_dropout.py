"""GlobalBatchDropout against nn.Dropout (the peer, same run): a training step of the pipeline's MLP.

One process: the mask is the batch's. Two ranks (simulated in this process: each draws the whole
global batch's mask and keeps its half), so the extra cost of world-size-independent masks shows.

    PYTHONPATH=src python benchmarks/bench_dropout.py
"""

from __future__ import annotations

import time

import torch
from torch import nn

from cleanfit.pipeline.dropout import GlobalBatchDropout
from cleanfit.pipeline.model import MLP


def _step_seconds(model: nn.Module, x: torch.Tensor, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(steps):
            loss = model(x).square().mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        best = min(best, (time.perf_counter() - started) / steps)
    return best


def main(steps: int = 200) -> None:
    torch.set_num_threads(1)
    print(f"{'case':<34}{'nn.Dropout us':>15}{'global us':>12}{'ratio':>8}")
    for features, batch, world in ((20, 64, 1), (20, 64, 2), (100, 1024, 1), (100, 1024, 2)):
        x = torch.randn(batch // world, features)
        torch.manual_seed(0)
        peer = nn.Sequential(*[nn.Dropout(0.1) if isinstance(m, GlobalBatchDropout) else m
                               for m in MLP(features, 2, [128, 64], 0.1)])
        ours = MLP(features, 2, [128, 64], 0.1, layout=(10 * batch, batch))
        for m in ours.modules():
            if isinstance(m, GlobalBatchDropout):
                m._rank, m._world_size = world - 1, world
        a, b = _step_seconds(peer, x, steps), _step_seconds(ours, x, steps)
        case = f"batch {batch}, {features} features, rank of {world}"
        print(f"{case:<34}{a * 1e6:>15.0f}{b * 1e6:>12.0f}{b / a:>8.2f}")


if __name__ == "__main__":
    main()
