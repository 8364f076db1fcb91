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
4. Beside each ratio, CPU µs per item of each side (this process + its worker processes, from Linux's
   schedstat), and for the images where Batches' extra time per item goes *in situ*: the same batches loaded,
   in one process, by the bare loop, the bare loop with the seeding, the seeding done first in a tight loop,
   and Batches' fetch, each batch by every variant in turn (CPU time: a loaded machine moves it far less than
   the wall clock). That table also gives the W=0 ceiling, bare / (bare + Batches' extra).

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
from torch.utils.data import DataLoader, Dataset, default_collate

import cleanfit as cf
from cleanfit.data.sources import as_source
from cleanfit.seeding import (MainRngs, _numpy_seeder, _python_rng, _seed_python, end_example, example_seeds,
                              seed_example)

CROP, SIDE, BATCH = 64, 72, 64


class Jpegs(Dataset):
    """Decode, random-crop and flip; randomness from Python's ``random``, as hand-written Pillow transforms draw it
    (torchvision's transforms draw from torch's generator, which Batches seeds too)."""

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


def _cpu_ns(pids: list[int]) -> int:
    """CPU time of processes (all their threads), ns, from Linux's /proc/PID/task/TID/schedstat (0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        except OSError:
            return 0
    return total


def _worker_pids(loader) -> list[int]:
    if isinstance(loader, cf.Batches):
        return loader._workers.pids() if loader._workers is not None else []
    return [w.pid for w in getattr(loader._iterator, "_workers", [])]


def _epoch(iterable, device: str) -> tuple[float, float, float]:
    """One epoch: items/s, and CPU µs per item in this process and in the loader's worker processes."""
    workers = _worker_pids(iterable)
    items, start, cpu, wcpu = 0, time.perf_counter(), time.process_time(), _cpu_ns(workers)
    for batch in iterable:
        first = batch[0] if isinstance(batch, (list, tuple)) else batch["input_ids"]
        if device != "cpu":
            first = first.to(device, non_blocking=True)
        items += len(first)
    if device != "cpu":
        torch.cuda.synchronize()
    wall, cpu, wcpu = time.perf_counter() - start, time.process_time() - cpu, _cpu_ns(workers) - wcpu
    return items / wall, cpu / items * 1e6, wcpu / items / 1e3


def _median(values) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def compare(ds: Dataset, workers: int, device: str, repeats: int, collate=None) -> dict[str, float]:
    """Best items/s of each over ``repeats`` epochs, interleaved epoch by epoch (a busy neighbour slows both
    alike), the median of the paired ratios, and each side's median CPU µs per item (this process + workers:
    what the neighbours' load does not move as much as the wall clock)."""
    pin = device != "cpu"
    ours = cf.Batches(ds, BATCH, seed=0, workers=workers, pin_memory=pin, collate=collate)
    theirs = DataLoader(ds, BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=pin, collate_fn=collate)
    _epoch(ours, device), _epoch(theirs, device)  # warm-up: workers started, caches warm
    pairs = [(_epoch(ours, device), _epoch(theirs, device)) for _ in range(repeats)]
    ours.close()
    return {
        "ours": max(a[0] for a, _ in pairs), "theirs": max(b[0] for _, b in pairs),
        "median": _median(a[0] / b[0] for a, b in pairs),
        "ours_cpu": _median(a[1] for a, _ in pairs), "theirs_cpu": _median(b[1] for _, b in pairs),
        "ours_wcpu": _median(a[2] for a, _ in pairs), "theirs_wcpu": _median(b[2] for _, b in pairs),
    }


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
    cost["python"] = _per_call_us(lambda key: _seed_python(_python_rng, key), keys)  # what seed_example calls
    cost["numpy"] = _per_call_us(_numpy_seeder(), [k & 0xFFFFFFFF for k in keys])  # what np.random.seed calls
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


def _one_seeding(seed_one):
    """A variant of the bare loop that runs ``seed_one(key)`` before each item."""
    def variant(ds, s, keys):
        items = []
        for i, key in zip(s.tolist(), keys):
            seed_one(key)
            items.append(ds[i])
        end_example()
        return default_collate(items)
    return variant


def _seed_first(ds, s, keys):
    for key in keys:
        seed_example(key)
    end_example()
    return default_collate([ds[i] for i in s.tolist()])


_IN_SITU = {
    "bare": lambda ds, s, keys: default_collate([ds[i] for i in s.tolist()]),
    "seeded": _one_seeding(seed_example),
    "python": _one_seeding(lambda key: _seed_python(_python_rng, key)),  # what seed_example calls
    "numpy": _one_seeding(lambda key: _numpy_seeder()(key & 0xFFFFFFFF)),
    "torch": _one_seeding(torch.default_generator.manual_seed),
    "seed_first": _seed_first,
}


def in_situ(ds: Dataset, rounds: int = 3) -> dict[str, float]:
    """Where Batches' extra time per item goes, in one process, as CPU time: every batch is loaded by each
    variant in turn (rotating which goes first), and each variant's cost is the median over batches of its
    difference to the bare ``default_collate([ds[i] for i in batch])`` (what the DataLoader's W=0 fetch does).

    ``seeded``: the bare loop with the three generators seeded before each item (``seed_example``), no save/
    restore; ``python``/``numpy``/``torch``: one generator seeded before each item; ``fetch``: Batches' whole
    main-process fetch; ``seed_first``: the same seeding done for the batch's keys in one tight loop before the
    (then unseeded) items: wrong for augmentation, but it shows what the seeding costs when it does not
    alternate with decoding."""
    source = as_source(ds)
    order = np.random.default_rng(0).permutation(len(ds))
    batches = [order[lo:lo + BATCH] for lo in range(0, len(ds), BATCH)]
    variants = {**_IN_SITU, "fetch": lambda ds, s, keys: source.fetch(1, s)}
    names = list(variants)
    cost: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for j, s in enumerate(batches):
            keys, took = example_seeds(0, 1, s), {}
            for name in names[j % len(names):] + names[:j % len(names)]:
                start = time.process_time_ns()
                variants[name](ds, s, keys)
                took[name] = (time.process_time_ns() - start) / len(s) / 1e3
            for name, t in took.items():
                cost[name].append(t - took["bare"] if name != "bare" else t)
    return {name: _median(values) for name, values in cost.items()}


def count_cost(sequences: int = 1024, repeats: int = 7) -> tuple[float, float, float]:
    """Seconds per epoch of a tiny LM through the Trainer, bare loss vs (loss, count): the best of each over
    ``repeats`` interleaved pairs after one warm-up pair, and the median of the paired ratios (an epoch of the
    same work moves by +-20% here, the page faults of its up-to-32 MB logits; the pairs see the same swings)."""
    ds = Sentences(sequences)

    def bare(model, batch):
        return F.cross_entropy(model(batch["input_ids"]).flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def counted(model, batch):
        return bare(model, batch), (batch["labels"] != -100).sum()

    def epoch(step) -> float:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(1000, 16), torch.nn.Linear(16, 1000))
        trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), step=step, accumulate=4,
                             device="cpu", precision="fp32", progress=False, report=False)
        start = time.perf_counter()
        trainer.fit(cf.Batches(ds, 16, collate=pad), epochs=1)
        return time.perf_counter() - start

    def pair(k: int) -> tuple[float, float]:  # which goes first alternates: the second of two runs is often faster
        if k % 2:
            c = epoch(counted)
            return epoch(bare), c
        return epoch(bare), epoch(counted)

    pair(0)  # warm-up
    pairs = [pair(k) for k in range(repeats)]
    return min(b for b, _ in pairs), min(c for _, c in pairs), _median(c / b for b, c in pairs)


def _table(title: str, unit: str, ds: Dataset, workers: list[int], device: str, repeats: int, collate=None) -> None:
    print(f"\n{title}\n")
    print(f"| workers | Batches {unit}/s (best) | DataLoader {unit}/s (best) | ratio of bests | median paired ratio "
          "| Batches CPU µs/item | DataLoader CPU µs/item | difference |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for w in workers:
        r = compare(ds, w, device, repeats, collate=collate)
        ours, theirs = r["ours_cpu"] + r["ours_wcpu"], r["theirs_cpu"] + r["theirs_wcpu"]
        split = f" ({r['ours_wcpu']:.1f} in workers)" if w else ""
        split_theirs = f" ({r['theirs_wcpu']:.1f} in workers)" if w else ""
        print(f"| {w} | {r['ours']:,.0f} | {r['theirs']:,.0f} | {r['ours'] / r['theirs']:.2f}x | {r['median']:.2f}x "
              f"| {ours:.1f}{split} | {theirs:.1f}{split_theirs} | {ours - theirs:+.1f} |", flush=True)


def _print_breakdown(parts: dict[str, float], c: dict[str, float]) -> None:
    """The in-situ table of where Batches' extra time per image goes, and the W=0 ceiling it implies."""
    extra = parts["fetch"]
    print(f"\nwhere Batches' extra time per image goes, in situ (one process, CPU µs per item, every batch loaded "
          f"by each variant in turn, median over batches of the difference to the bare loop):\n\n"
          f"| part | µs per item |\n| --- | ---: |\n"
          f"| bare loop `default_collate([ds[i] ...])` (the DataLoader's W=0 fetch) | {parts['bare']:.1f} |\n"
          f"| + the three generators seeded before each item, in situ | +{parts['seeded']:.1f} |\n"
          f"| ... Python's `random` alone before each item (its first draw's 624-word twist included) "
          f"| +{parts['python']:.1f} |\n"
          f"| ... NumPy's global RNG alone | +{parts['numpy']:.1f} |\n"
          f"| ... torch's CPU generator alone | +{parts['torch']:.1f} |\n"
          f"| + the same seeding done in one tight loop before the batch's items (not the contract: a reference) "
          f"| +{parts['seed_first']:.1f} |\n"
          f"| the same seeding alone, isolated: Python {c['python']:.1f} + NumPy {c['numpy']:.1f} + torch "
          f"{c['torch']:.1f} + keys {c['keys']:.2f} | {c['python'] + c['numpy'] + c['torch'] + c['keys']:.1f} |\n"
          f"| + save/restore of the main process's RNGs, isolated ({c['per_batch']:.0f} µs a batch; workers skip it)"
          f" | {c['per_batch'] / BATCH:.1f} |\n"
          f"| **Batches' whole main-process fetch over the bare loop, in situ** | **+{extra:.1f}** |\n"
          f"\nso at W=0 the ratio cannot exceed {parts['bare']:.1f} / ({parts['bare']:.1f} + {extra:.1f}) = "
          f"{parts['bare'] / (parts['bare'] + extra):.3f}; seeding in situ costs {parts['seeded'] - parts['seed_first']:.1f}"
          f" µs more than in a tight loop (it alternates with decoding: each side finds the caches cold)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs of each, interleaved")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, device {args.device}, "
          f"load average {load:.2f} at the start")
    images = Jpegs(make_jpegs(args.images))
    _table(f"{args.images} JPEGs {SIDE}x{SIDE} -> random {CROP}x{CROP} crop + flip, batch {BATCH}; CPU µs/item = "
           "this process + the worker processes, median over the timed epochs", "images", images, args.workers,
           args.device, args.repeats)
    c = seeding_cost()
    _print_breakdown(in_situ(images), c)
    _table("padded text: 4096 sequences, log-normal lengths 4..512 tokens, batch 64, pad collate", "seq",
           Sentences(4096), sorted({0, *[w for w in args.workers if w <= 2]}), "cpu", args.repeats, collate=pad)
    ours, bare_loop = path_overhead(Sentences(4096), pad)
    print(f"\nmain-process path on the text items, one process: Batches fetch {ours:.1f} µs per item against the "
          f"bare loop's {bare_loop:.1f}: {ours - bare_loop:.1f} µs per item added")
    bare, counted, paired = count_cost()
    print(f"\n(loss, count) weighting: an epoch of a tiny LM (1024 sequences, batch 16, accumulate=4) {counted:.3f} s "
          f"vs {bare:.3f} s with a bare loss (bests): {counted / bare:.2f}x; median paired ratio {paired:.2f}x")
    print(f"per-example seeding, isolated: {c['all'] + c['keys']:.1f} µs per item (goal < 20): the keys "
          f"{c['keys']:.2f}, then re-seeding Python's random {c['python']:.1f} + NumPy's {c['numpy']:.1f} + torch's "
          f"{c['torch']:.1f} = {c['python'] + c['numpy'] + c['torch']:.1f} µs (the floor: each generator's own "
          f"initialisation); main-process RNG save/restore {c['per_batch']:.0f} µs per batch "
          f"({c['per_batch'] / BATCH:.1f} µs per item at batch {BATCH})")


if __name__ == "__main__":
    main()
