"""Trainer overhead: optimizer steps per second of ``cf.Trainer.fit`` against a hand-written PyTorch
loop doing the same work, and against PyTorch Lightning's Trainer, in one run.

    python benchmarks/bench_trainer.py [--steps 400] [--repeats 5] [--threads 1]
    python benchmarks/bench_trainer.py --gpu          # bf16 vs fp32 Trainer step time on a CUDA GPU

Same small MLP (where per-step overhead shows), same Batches, same optimizer (AdamW), fp32, CPU. The
three are run interleaved, ``--repeats`` times each, and the median steps per CPU-second (one
thread, ``time.process_time``) is reported with the best run (the least disturbed; what ``timeit``
reports), so other load on a shared machine hurts all three alike. Lightning is a benchmark-only peer: it is not a cleanfit dependency
and not in requirements-dev.txt; install it with the torch pin
(``pip install lightning -c <(echo torch==2.13.0)``). Without it that column is skipped.

``--gpu``: the Trainer on a model where mixed precision matters (a wide MLP, large batch), fp32 vs
bf16 (goal: bf16 >= 1.8x faster on an H100).
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import time

import numpy as np
import torch
from torch.nn import functional as F

import cleanfit as cf


def _model(width: int, depth: int, d_in: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Linear(d_in, width), torch.nn.ReLU()]
    for _ in range(depth - 1):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(width, 2))
    return torch.nn.Sequential(*layers)


def _data(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.normal(size=(n, d)).astype("float32"))
    return X, (X[:, 0] > 0).long()


def hand_loop(model, optimizer, batches, epochs: int) -> None:
    model.train()
    for _ in range(epochs):
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def cleanfit_loop(model, optimizer, batches, epochs: int) -> None:
    trainer = cf.Trainer(model, optimizer, loss=F.cross_entropy, device="cpu", precision="fp32", progress=False)
    trainer.fit(batches, epochs=epochs)


def lightning_loop(model, optimizer, batches, epochs: int) -> None:
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def training_step(self, batch, batch_idx):
            x, y = batch
            return F.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return optimizer

    class EpochBatches:
        """Lightning stops each epoch after len() batches without exhausting the iterator, so a plain
        Batches would resume at its end and yield an empty epoch every other epoch; start each one."""

        def __init__(self) -> None:
            self.epoch = 0

        def __len__(self) -> int:
            return len(batches)

        def __iter__(self):
            batches.set_epoch(self.epoch)
            self.epoch += 1
            return iter(batches)

    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Module(), train_dataloaders=EpochBatches())


def measure(loop, *, n: int, d: int, batch: int, epochs: int, width: int, depth: int) -> float:
    X, y = _data(n, d)
    model = _model(width, depth, d)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batches = cf.Batches((X, y), batch, seed=0)
    steps = len(batches) * epochs
    start = time.process_time()  # CPU time of this process: other load on a shared machine does not count
    loop(model, optimizer, batches, epochs)
    return steps / (time.process_time() - start)


def cpu_benchmark(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    epochs = 4
    n = args.steps * args.batch // epochs
    loops = {"hand-written loop": hand_loop, "cleanfit Trainer": cleanfit_loop}
    try:
        import lightning  # noqa: F401

        loops["Lightning Trainer"] = lightning_loop
    except ImportError:
        print("lightning is not installed: skipping that peer")
    shape = dict(n=n, d=32, batch=args.batch, epochs=epochs, width=args.width, depth=args.depth)
    for loop in loops.values():  # warm up: imports, allocator, first-call costs
        measure(loop, **{**shape, "n": args.batch * 8})
    rates: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, loop in loops.items():
            rates[name].append(measure(loop, **shape))
    best = {name: max(r) for name, r in rates.items()}
    median = {name: statistics.median(r) for name, r in rates.items()}
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s); "
          f"MLP 32-{args.width}x{args.depth}-2, batch {args.batch}, AdamW, fp32, {args.steps} steps x {args.repeats}")
    print(f"{'loop':<20} {'best steps/s':>13} {'vs hand':>8} {'median':>8} {'vs hand':>8}")
    for name in rates:
        print(f"{name:<20} {best[name]:>13.0f} {best[name] / best['hand-written loop']:>7.3f}x "
              f"{median[name]:>8.0f} {median[name] / median['hand-written loop']:>7.3f}x")
    if "Lightning Trainer" in best:
        print(f"cleanfit / Lightning (best): {best['cleanfit Trainer'] / best['Lightning Trainer']:.2f}x")


def gpu_benchmark(args: argparse.Namespace) -> None:
    assert torch.cuda.is_available(), "--gpu needs a CUDA device"
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
    X, y = (t.cuda() for t in _data(64 * 1024, 1024))  # data already on the GPU: time the step, not the copy
    results = {}
    for precision in ("fp32", "bf16", "fp32", "bf16"):
        model = _model(4096, 4, 1024)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        trainer = cf.Trainer(model, optimizer, loss=F.cross_entropy, device="cuda", precision=precision, progress=False)
        batches = cf.Batches((X, y), 1024, seed=0)
        trainer.fit(cf.Batches((X[:4096], y[:4096]), 1024), epochs=1)  # warm up
        torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.fit(batches, epochs=1)
        torch.cuda.synchronize()
        results[precision] = len(batches) / (time.perf_counter() - start)
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}; MLP 1024-4096x4-2, batch 1024, AdamW")
    for precision, rate in results.items():  # the second run of each (the first warms up)
        print(f"{precision}: {rate:.1f} steps/s")
    print(f"bf16 / fp32: {results['bf16'] / results['fp32']:.2f}x (TF32 off)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--gpu", action="store_true")
    args = parser.parse_args()
    gpu_benchmark(args) if args.gpu else cpu_benchmark(args)


if __name__ == "__main__":
    main()
