"""``cleanfit train`` on a Parquet table larger than its memory budget, against the same train in memory.

Generates (in chunks, with pyarrow) a Parquet file of ROWS x 20 float32 features + an int64 label in row groups
of 100,000 rows, then runs the real command, each time in its own child process
(``python -m cleanfit train CONFIG --set audit.memory=...``, one epoch, no tracking):
- out of core: ``audit.memory`` below the table, so the table is audited out of core, split from its label
  column, preprocessed from DuckDB's statistics and trained block by block (``data.loading = "out-of-core"``);
- the peer: ``audit.memory = "auto"`` (half the machine's available memory, above the table), the in-memory
  path: ``read_table``, ``cf.split``, ``cf.audit``, the ColumnTransformer, tensors of every part.
For each: wall time and peak resident memory (``os.wait4``'s rusage of that child), against the table's size in
memory (``ROWS x (20 x 4 + 8)`` bytes), and the test accuracy both reach.

    .venv/bin/python benchmarks/bench_train_ooc.py [--rows 5000000] [--budget 200MB] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

D, GROUP = 20, 100_000
FEATURES = [f"f{i}" for i in range(D)]
SETTINGS = ["train.epochs=1", "train.batch_size=1024", "model.hidden=[64]", "tracking.backend=none"]


def generate(path: Path, rows: int) -> None:
    """ROWS rows in row groups of GROUP: standard normal features, a label from the first two and noise."""
    rng = np.random.default_rng(0)
    schema = pa.schema([(f, pa.float32()) for f in FEATURES] + [("label", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, GROUP):
            n = min(GROUP, rows - start)
            x = rng.standard_normal((n, D), dtype=np.float32)
            y = (x[:, 0] + x[:, 1] + rng.standard_normal(n, dtype=np.float32) > 0).astype(np.int64)
            writer.write_table(pa.table({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "label": y}), row_group_size=GROUP)


def measure(config: Path, out: Path, memory: str) -> dict:
    """Run ``cleanfit train`` in a child; its JSON result, wall time and peak RSS (MB) from os.wait4."""
    args = [sys.executable, "-m", "cleanfit", "train", str(config), "--out", str(out), "--json", str(out) + ".json",
            *[a for s in [*SETTINGS, f"audit.memory={memory!r}"] for a in ("--set", s)]]
    began = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"cleanfit train with audit.memory={memory} failed:\n{err[-3000:]}")
    result = json.loads(Path(str(out) + ".json").read_text())
    return {"wall": time.perf_counter() - began, "peak_mb": usage.ru_maxrss / 1024, "loading": result["data"]["loading"],
            "accuracy": result["metrics"]["test_accuracy"], "split": result["split"]["method"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--budget", default="200MB")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--no-peer", action="store_true", help="skip the in-memory run (a table too large for it)")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        path, config = Path(tmp) / "table.parquet", Path(tmp) / "table.toml"
        t0 = time.perf_counter()
        generate(path, a.rows)
        config.write_text('[data]\npath = "table.parquet"\ntarget = "label"\n')
        in_memory_mb = a.rows * (D * 4 + 8) / 2**20
        print(f"generated {a.rows:,} rows x {D} float32 + label ({in_memory_mb:,.0f} MB in memory, "
              f"{path.stat().st_size / 2**20:,.0f} MB on disk, row groups of {GROUP:,}) in {time.perf_counter() - t0:.1f}s; "
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
        runs = {"out of core": measure(config, Path(tmp) / "ooc", a.budget)}
        if not a.no_peer:
            runs["in memory (peer)"] = measure(config, Path(tmp) / "mem", "auto")
        print(f"{'':20}{'loading':>13}{'wall s':>9}{'peak MB':>10}{'x table':>9}{'test acc':>10}")
        for name, r in runs.items():
            print(f"{name:20}{r['loading']:>13}{r['wall']:9.1f}{r['peak_mb']:10.0f}{r['peak_mb'] / in_memory_mb:9.2f}"
                  f"{r['accuracy']:10.4f}   split {r['split']}")
        if len(runs) == 2:
            ooc, mem = runs.values()
            print(f"ratio out of core / in memory: wall {ooc['wall'] / mem['wall']:.2f}x, peak memory "
                  f"{ooc['peak_mb'] / mem['peak_mb']:.2f}x")


if __name__ == "__main__":
    main()
