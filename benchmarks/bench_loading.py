"""Loading a Dataset that does real work: cleanfit.Batches(workers=W) against torch's DataLoader, one run.

1. Images/s through a JPEG-decode + random 64x64 crop + horizontal flip Dataset (Pillow; 72x72 JPEGs
   generated here, batch 64): ``Batches(ds, 64, workers=W)`` (per-example seeding on) against
   ``DataLoader(ds, 64, shuffle=True, num_workers=W, persistent_workers=W > 0)``, for each W. Workers are
   started by a warm-up epoch on both sides, then the best of interleaved repeats is taken. With
   ``--device cuda``, both pin memory and copy each batch to the GPU (non-blocking).
2. Padded text: token sequences with long-tailed lengths (log-normal, 4 to 512 tokens), padded by the same
   collate on both sides (W=0 and 2); and the cost of ``step -> (loss, count)`` against a bare loss in a
   Trainer with accumulation, on a tiny embedding model.
3. The per-example seeding cost (Python ``random``, NumPy's global RNG, torch's CPU generator, from
   ``(seed, epoch, index)``), per item, split into the keys and each generator's own re-seeding (the floor),
   the save/restore of the main process's RNGs, per batch, and what Batches' main-process fetch adds per item
   over the bare ``collate([ds[i] ...])`` loop, measured in one process (free of the neighbours' load swings).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_loading.py [--workers 0 2] [--images 2048] [--device cuda]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import time

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

import cleanfit as cf
from cleanfit.data.sources import as_source
from cleanfit.seeding import MainRngs, example_seeds, seed_example

CROP, SIDE, BATCH = 64, 72, 64


class Jpegs(Dataset):
    """Decode, random-crop and flip; randomness from Python's ``random`` (what torchvision transforms use)."""

    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs = blobs

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.open(io.BytesIO(self.blobs[i])).convert("RGB")
        left, top = random.randint(0, SIDE - CROP), random.randint(0, SIDE - CROP)
        image = image.crop((left, top, left + CROP, top + CROP))
        if random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1), i % 10


def make_jpegs(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(SIDE, SIDE, 3), dtype=np.uint8)
    blobs = []
    for i in range(n):
        pixels = np.roll(base, i, axis=0) ^ np.uint8(i % 256)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, format="JPEG", quality=90)
        blobs.append(out.getvalue())
    return blobs


class Sentences(Dataset):
    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        lengths = np.clip(rng.lognormal(mean=3.5, sigma=1.0, size=n).astype(int), 4, 512)
        self.seqs = [torch.from_numpy(rng.integers(1, 1000, size=k)) for k in lengths]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.seqs[i]


def pad(items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    ids = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
    return {"input_ids": ids, "labels": ids.masked_fill(ids == 0, -100)}


def _epoch_rate(iterable, device: str) -> float:
    items, start = 0, time.perf_counter()
    for batch in iterable:
        first = batch[0] if isinstance(batch, (list, tuple)) else batch["input_ids"]
        if device != "cpu":
            first = first.to(device, non_blocking=True)
        items += len(first)
    if device != "cpu":
        torch.cuda.synchronize()
    return items / (time.perf_counter() - start)


def compare(ds: Dataset, workers: int, device: str, repeats: int, collate=None) -> tuple[float, float, float]:
    """Best items/s of each over ``repeats`` epochs, interleaved epoch by epoch (a busy neighbour slows both
    alike), and the median of the paired ratios."""
    pin = device != "cpu"
    ours = cf.Batches(ds, BATCH, seed=0, workers=workers, pin_memory=pin, collate=collate)
    theirs = DataLoader(ds, BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=pin, collate_fn=collate)
    _epoch_rate(ours, device), _epoch_rate(theirs, device)  # warm-up: workers started, caches warm
    pairs = [(_epoch_rate(ours, device), _epoch_rate(theirs, device)) for _ in range(repeats)]
    ours.close()
    ratios = sorted(a / b for a, b in pairs)
    return max(a for a, _ in pairs), max(b for _, b in pairs), ratios[len(ratios) // 2]


def _per_call_us(fn, args: list, repeats: int = 5) -> float:
    """Best over ``repeats`` of the µs per call of ``fn`` over ``args`` (the loop's own cost included)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for a in args:
            fn(a)
        best = min(best, time.perf_counter() - start)
    return best / len(args) * 1e6


def seeding_cost(n: int = 20000) -> dict[str, float]:
    """µs per item of the per-example seeding, the three generators' own re-seeding (the floor), and the
    main process's RNG save/restore per batch."""
    keys = example_seeds(0, 1, np.arange(n))
    start = time.perf_counter()
    for lo in range(0, n, BATCH):
        example_seeds(0, 1, np.arange(lo, lo + BATCH))
    cost = {"keys": (time.perf_counter() - start) / n * 1e6}
    cost["all"] = _per_call_us(seed_example, keys)
    cost["python"] = _per_call_us(random.seed, keys)
    cost["numpy"] = _per_call_us(np.random.seed, [k & 0xFFFFFFFF for k in keys])
    cost["torch"] = _per_call_us(torch.default_generator.manual_seed, keys)

    def save_restore(_):
        with MainRngs():
            pass

    cost["per_batch"] = _per_call_us(save_restore, list(range(n // 20)))
    return cost


def path_overhead(ds: Dataset, collate, rounds: int = 7) -> tuple[float, float]:
    """µs per item, in one process, interleaved: Batches' main-process fetch (seeding, RNG save/restore,
    checks) against the bare ``collate([ds[i] for i in batch])`` loop over the same batches (medians)."""
    source = as_source(ds, collate=collate)
    order = np.random.default_rng(0).permutation(len(ds))
    slices = [order[lo:lo + BATCH] for lo in range(0, len(ds), BATCH)]
    ours, bare = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for s in slices:
            source.fetch(1, s)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        for s in slices:
            collate([ds[i] for i in s.tolist()])
        bare.append(time.perf_counter() - start)
    return (sorted(ours)[rounds // 2] / len(ds) * 1e6, sorted(bare)[rounds // 2] / len(ds) * 1e6)


def count_cost(steps_data: int = 256) -> tuple[float, float]:
    """Seconds per epoch of a tiny LM through the Trainer: bare loss vs (loss, count)."""
    ds = Sentences(steps_data)

    def bare(model, batch):
        return F.cross_entropy(model(batch["input_ids"]).flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def counted(model, batch):
        return bare(model, batch), (batch["labels"] != -100).sum()

    times = {}
    for name, step in (("bare", bare), ("counted", counted)) * 2:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(1000, 16), torch.nn.Linear(16, 1000))
        trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), step=step, accumulate=4,
                             device="cpu", precision="fp32", progress=False, report=False)
        start = time.perf_counter()
        trainer.fit(cf.Batches(ds, 16, collate=pad), epochs=1)
        times[name] = min(times.get(name, 1e9), time.perf_counter() - start)
    return times["bare"], times["counted"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs of each, interleaved")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, device {args.device}")
    images = Jpegs(make_jpegs(args.images))
    print(f"\n{args.images} JPEGs {SIDE}x{SIDE} -> random {CROP}x{CROP} crop + flip, batch {BATCH}\n")
    print("| workers | Batches images/s (best) | DataLoader images/s (best) | ratio of bests | median paired ratio |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for w in args.workers:
        ours, theirs, median = compare(images, w, args.device, args.repeats)
        print(f"| {w} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x | {median:.2f}x |", flush=True)
    text = Sentences(4096)
    print("\npadded text: 4096 sequences, log-normal lengths 4..512 tokens, batch 64, pad collate\n")
    print("| workers | Batches seq/s (best) | DataLoader seq/s (best) | ratio of bests | median paired ratio |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for w in sorted({0, *[w for w in args.workers if w <= 2]}):
        ours, theirs, median = compare(text, w, "cpu", args.repeats, collate=pad)
        print(f"| {w} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x | {median:.2f}x |", flush=True)
    ours, bare_loop = path_overhead(text, pad)
    print(f"\nmain-process path on the text items, one process: Batches fetch {ours:.1f} µs per item against the "
          f"bare loop's {bare_loop:.1f}: {ours - bare_loop:.1f} µs per item added")
    bare, counted = count_cost()
    print(f"\n(loss, count) weighting: an epoch of a tiny LM (accumulate=4) {counted:.3f} s vs {bare:.3f} s with a "
          f"bare loss: {counted / bare:.2f}x")
    c = seeding_cost()
    print(f"per-example seeding: {c['all'] + c['keys']:.1f} µs per item (goal < 20): the keys {c['keys']:.2f}, then "
          f"re-seeding Python's random {c['python']:.1f} + NumPy's {c['numpy']:.1f} + torch's {c['torch']:.1f} = "
          f"{c['python'] + c['numpy'] + c['torch']:.1f} µs (the floor: each generator's own initialisation); "
          f"main-process RNG save/restore {c['per_batch']:.0f} µs per batch ({c['per_batch'] / BATCH:.1f} µs per "
          f"item at batch {BATCH})")

if __name__ == "__main__":
    main()
