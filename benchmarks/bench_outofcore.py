"""Rows per second from Parquet, and how random the order is, in one run.

Compares, on the same file (2,000,000 rows x 16 float32 features + a label, row groups of 65,536):
- pyarrow reading the row groups sequentially and converting to NumPy: the ceiling (no shuffle);
- ``Batches(ParquetSource(...), shuffle="blocks")``: cleanfit's two-level shuffle, with and without
  ``prefetch``;
- Hugging Face ``datasets``: the map-style ``Dataset.shuffle()`` (random access through an indices
  mapping) and the streaming ``IterableDataset.shuffle(buffer_size=...)`` (shard + buffer shuffle).
Randomness: Kendall's tau between the position a row is yielded at and its stored position
(1 = stored order, 0 = no relation), and the mean displacement as a fraction of n.

``datasets`` is a benchmark-only peer (not a cleanfit dependency): install it with
``.venv/bin/pip install datasets -c <(.venv/bin/pip freeze)`` to include it.

    .venv/bin/python benchmarks/bench_outofcore.py
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.stats import kendalltau

from cleanfit.data.batches import Batches
from cleanfit.data.outofcore import ParquetSource, prefetch

N, D, B, ROW_GROUP = 2_000_000, 16, 256, 65_536
FEATURES = [f"f{i}" for i in range(D)]


def _write(path: Path) -> None:
    rng = np.random.default_rng(0)
    columns = {name: rng.standard_normal(N, dtype=np.float32) for name in FEATURES}
    columns["f0"] = np.arange(N, dtype=np.float32)  # the stored position, to measure the order
    columns["y"] = rng.integers(0, 2, N)
    pq.write_table(pa.table(columns), path, row_group_size=ROW_GROUP)


def _randomness(positions: np.ndarray) -> tuple[float, float]:
    sample = np.random.default_rng(1).choice(len(positions), size=min(100_000, len(positions)), replace=False)
    tau = kendalltau(sample, positions[sample]).statistic
    displacement = float(np.abs(positions - np.arange(len(positions))).mean() / len(positions))
    return float(tau), displacement


def _run(name, batches_fn, ids_of):
    start = time.perf_counter()
    ids, rows = [], 0
    for batch in batches_fn():
        got = ids_of(batch)
        ids.append(got)
        rows += len(got)
    seconds = time.perf_counter() - start
    positions = np.concatenate(ids).astype(np.int64)
    tau, displacement = _randomness(positions)
    return name, rows / seconds, tau, displacement


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.parquet"
        _write(path)
        results = []

        def pyarrow_sequential():
            pf = pq.ParquetFile(path)
            for g in range(pf.metadata.num_row_groups):
                table = pf.read_row_group(g, columns=[*FEATURES, "y"])
                x = np.stack([table.column(f).to_numpy() for f in FEATURES], axis=1)
                y = table.column("y").to_numpy()
                for s in range(0, len(y), B):
                    yield x[s : s + B], y[s : s + B]

        results.append(_run("pyarrow, sequential row groups (ceiling, no shuffle)", pyarrow_sequential, lambda b: b[0][:, 0]))
        source = ParquetSource(path, features=FEATURES, target="y", buffer_blocks=8)
        batches = Batches(source, B, shuffle="blocks", seed=0)
        results.append(_run("cleanfit Batches(ParquetSource, shuffle='blocks')", lambda: batches, lambda b: b[0][:, 0]))
        results.append(_run("cleanfit, same + prefetch thread", lambda: prefetch(batches, depth=4), lambda b: b[0][:, 0]))

        try:
            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
            os.environ["HF_DATASETS_CACHE"] = str(Path(tmp) / "hf")
            import datasets

            datasets.disable_progress_bars()
            t0 = time.perf_counter()
            ds = datasets.Dataset.from_parquet(str(path), cache_dir=str(Path(tmp) / "hf")).with_format("numpy")
            prep = time.perf_counter() - t0
            shuffled = ds.shuffle(seed=0)
            results.append(_run(f"HF datasets Dataset.shuffle() (+{prep:.1f}s to build its Arrow cache)",
                                lambda: shuffled.iter(batch_size=B), lambda b: b["f0"]))
            streaming = datasets.load_dataset("parquet", data_files=str(path), split="train", streaming=True)
            buffered = streaming.shuffle(seed=0, buffer_size=8 * ROW_GROUP).with_format("numpy")
            results.append(_run("HF datasets IterableDataset.shuffle(buffer_size=8 row groups)",
                                lambda: buffered.iter(batch_size=B), lambda b: b["f0"]))
        except ImportError:
            print("(Hugging Face datasets not installed: skipped)")

    ceiling = results[0][1]
    ours = results[1][1]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; N={N:,}, {D} float32 features, batch {B}, row groups of {ROW_GROUP:,}\n")
    print("| reader | rows/s | share of the ceiling | cleanfit is | Kendall tau vs stored order | mean displacement / n |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, rate, tau, disp in results:
        print(f"| {name} | {rate:,.0f} | {rate / ceiling:.2f} | {ours / rate:.2f}x | {tau:.4f} | {disp:.3f} |")


if __name__ == "__main__":
    main()
