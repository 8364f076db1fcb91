"""Resume cost deep inside an epoch: cleanfit's O(1) restore against replaying a DataLoader, in one run.

A small MLP (8 -> 64 -> 64 -> 1, AdamW) trains on N = 10^7 in-memory examples, batch 64 (156,250
batches per epoch). The run "crashed" at batch K of epoch 3; how long until the next batch is ready?

- cleanfit: read + verify + load the checkpoint (CheckpointManager.resolve), restore the model,
  optimizer, RNGs and the Batches position (a few integers), and fetch the next batch. The next batch
  is checked to be exactly the one an uninterrupted run would see. Also end to end: the real
  ``Trainer.fit(resume=True)`` from a checkpoint at batch K until its first optimizer step is done.
- Peers: a torch DataLoader has no position to restore, so a resume replays the epoch up to batch K:
  ``DataLoader(TensorDataset, shuffle=True)`` (per-example fetch + collate), the
  ``DataLoader(sampler=BatchSampler(RandomSampler))`` trick (one fetch per batch), and, cheapest,
  skipping K batches of index lists from the BatchSampler without fetching any data.

Also shown: ``Batches(shuffle="feistel")`` at N = 10^9 (no stored permutation).

    .venv/bin/python benchmarks/bench_resume.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import tempfile
import time

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from cleanfit.data.batches import Batches
from cleanfit.seeding import rng_state, seed_everything, set_rng_state
from cleanfit.training.checkpoints import CheckpointManager

N, D, B, EPOCH = 10_000_000, 8, 64, 3


class _Virtual:
    """A map-style Dataset of ``n`` rows computed from the index (for n = 10^9 without the memory)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        index = torch.tensor(indices, dtype=torch.int64)
        x = (index.unsqueeze(1) * torch.arange(1, D + 1) % 997).float()
        return list(zip(x, index % 2))


def _model() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.zeros(2, D)).sum().backward()
    optimizer.step()  # so the optimizer has moment buffers to save and restore
    return model, optimizer


def _crash_state(batches: Batches, position: int) -> dict:
    """The training state a run saves at batch ``position`` of epoch EPOCH."""
    model, optimizer = _model()
    batches.set_epoch(EPOCH)
    batches.load_state_dict({**batches.state_dict(), "position": position})
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "train_batches": batches.state_dict(),
        "rng": rng_state(),
        "step": EPOCH * len(batches) + position,
        "epoch": EPOCH,
    }


def _cleanfit_resume(directory: str, data, shuffle) -> tuple[float, dict[str, float], object]:
    start = time.perf_counter()
    state = CheckpointManager(directory).resolve(True)
    loaded = time.perf_counter()
    model, optimizer = _model()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    batches = Batches(data, B, seed=0, shuffle=shuffle)
    batches.load_state_dict(state["train_batches"])
    restored = time.perf_counter()
    batch = next(iter(batches))
    done = time.perf_counter()
    parts = {"load": loaded - start, "restore": restored - loaded, "first batch": done - restored}
    return done - start, parts, batch


def _measure_cleanfit(data, shuffle, positions: list[int]) -> list[tuple[int, float, dict[str, float]]]:
    rows = []
    for position in positions:
        with tempfile.TemporaryDirectory() as directory:
            batches = Batches(data, B, seed=0, shuffle=shuffle)
            state = _crash_state(batches, position)
            CheckpointManager(directory).save(state, step=state["step"], epoch=EPOCH, metric=None)
            total, parts, batch = min((_cleanfit_resume(directory, data, shuffle) for _ in range(3)), key=lambda r: r[0])
            # The resumed batch is the one an uninterrupted run yields at this position.
            expected_rows = Batches(data, B, seed=0, shuffle=shuffle).order(EPOCH)[position * B : (position + 1) * B]
            expected_y = torch.as_tensor(expected_rows) % 2 if isinstance(data, _Virtual) else data[1][torch.as_tensor(expected_rows)]
            assert torch.equal(batch[1], expected_y), "resumed batch differs from the uninterrupted run"
            rows.append((position, total, parts))
    return rows


class _Stop(Exception):
    pass


def _trainer(directory: str, record: dict | None = None):
    from cleanfit.training.trainer import Trainer

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    trainer = Trainer(model, torch.optim.AdamW(model.parameters(), lr=1e-3), loss=nn.functional.cross_entropy,
                      device="cpu", checkpoint_dir=directory, checkpoint_every=1, progress=False)

    def stop_after_first_step(trainer, state) -> None:
        if record is not None:
            record.update(done=time.perf_counter(), step=state.step, position=state.train.state_dict()["position"])
        raise _Stop

    trainer._after_step = stop_after_first_step  # the Trainer's test hook: called after each optimizer step
    return trainer


def _measure_trainer(data, position: int) -> tuple[float, dict]:
    """``Trainer.fit(resume=True)`` from a checkpoint at batch ``position`` of epoch EPOCH, until its
    first optimizer step is done (checkpoint read, every state restored, one batch trained)."""
    with tempfile.TemporaryDirectory() as directory:
        batches = Batches(data, B, seed=0)
        try:  # a real checkpoint of this run, written by the Trainer after its first step ...
            _trainer(directory).fit(batches, epochs=EPOCH + 1)
        except _Stop:
            pass
        manager = CheckpointManager(directory)
        state = manager.resolve(True)  # ... moved to batch `position` of epoch EPOCH
        state["train_batches"].update(epoch=EPOCH, position=position)
        state["epoch"], state["step"] = EPOCH, EPOCH * len(batches) + position
        manager.save(state, step=state["step"], epoch=EPOCH, metric=None)
        record: dict = {}
        trainer = _trainer(directory, record)
        start = time.perf_counter()
        try:
            trainer.fit(Batches(data, B, seed=0), epochs=EPOCH + 1, resume=True)
        except _Stop:
            pass
        assert record["step"] == state["step"] + 1 and record["position"] == position + 1
        return record["done"] - start, record


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _replay(loader_factory, k: int) -> float:
    start = time.perf_counter()
    iterator = iter(loader_factory())
    for _ in itertools.islice(iterator, k):
        pass
    next(iterator)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="replay only 10,000 batches (smoke run)")
    args = parser.parse_args()
    k = 10_000 if args.quick else 100_000

    seed_everything(0)
    x, y = torch.randn(N, D), torch.randint(0, 2, (N,))
    data = (x, y)
    per_epoch = len(Batches(data, B))
    positions = [0, 1_000, k, per_epoch - 1]
    ours = _measure_cleanfit(data, True, positions)
    feistel = _measure_cleanfit(_Virtual(1_000_000_000), "feistel", [0, k, 1_000_000_000 // B - 1])
    trainer_seconds, _ = _measure_trainer(data, k)
    order_seconds = min(_time(lambda: Batches(data, B, seed=0).order(EPOCH)) for _ in range(3))

    dataset = TensorDataset(x, y)
    generator = torch.Generator().manual_seed(0)
    peers = [
        ("BatchSampler(RandomSampler): skip index lists, no fetch",
         _replay(lambda: BatchSampler(RandomSampler(dataset, generator=generator), B, False), k)),
        ("DataLoader(sampler=BatchSampler(RandomSampler), batch_size=None)",
         _replay(lambda: DataLoader(dataset, sampler=BatchSampler(RandomSampler(dataset, generator=generator), B, False), batch_size=None), k)),
        ("DataLoader(TensorDataset, batch_size=64, shuffle=True)",
         _replay(lambda: DataLoader(dataset, batch_size=B, shuffle=True, generator=generator), k)),
    ]

    print(f"machine: {platform.machine()} {platform.processor() or 'cpu'}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"N={N:,}, batch={B}, {per_epoch:,} batches per epoch; resume at batch K of epoch {EPOCH}\n")
    print("| resume at batch K | cleanfit total | load checkpoint | restore state | first batch |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for position, total, parts in ours:
        print(f"| {position:,} | {total * 1e3:.0f} ms | {parts['load'] * 1e3:.1f} ms | {parts['restore'] * 1e3:.1f} ms | {parts['first batch'] * 1e3:.0f} ms |")
    for position, total, parts in feistel:
        print(f"| {position:,} (N=10^9, feistel) | {total * 1e3:.0f} ms | {parts['load'] * 1e3:.1f} ms | {parts['restore'] * 1e3:.1f} ms | {parts['first batch'] * 1e3:.1f} ms |")
    print(f"| {k:,} (Trainer.fit(resume=True) to its first optimizer step) | {trainer_seconds * 1e3:.0f} ms | | | |")
    print(f"\nthe epoch's order alone (a permutation of {N:,}, paid once per epoch by any shuffled loader): "
          f"{order_seconds * 1e3:.0f} ms")
    at_k = next(total for position, total, _ in ours if position == k)
    print(f"\n| replay to batch {k:,} (peer) | seconds | cleanfit resume is |")
    print("| --- | ---: | ---: |")
    for name, seconds in peers:
        print(f"| {name} | {seconds:.2f} s | {seconds / at_k:.0f}x faster |")
    worst = max([total for _, total, _ in ours + feistel] + [trainer_seconds])
    print(f"\ngoal: under 1 s at any step (worst measured: {worst * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
