"""The out-of-core audit of a Parquet table larger than its memory budget, against DuckDB's own duplicate count.

Generates (in chunks, with pyarrow) a Parquet file of ROWS x 20 float32 features + an int64 label, with
PLANTED exact copies of earlier rows scattered through it, then runs, each in its own child process:
- ``cf.audit(path, "label", memory=BUDGET)``: the whole audit (default split: stratified by row number), out
  of core because the table is larger than the budget;
  with ``--preprocessing`` also verifying two scalers over all 20 columns (their inputs stored in DuckDB);
- the ceiling: DuckDB alone, one pass counting duplicate rows over all 21 columns of the same file
  (``GROUP BY ALL`` ... ``HAVING count(*) > 1``), with the same thread count.
For each: wall time and peak resident memory (``os.wait4``'s rusage of that child). Goals: the planted copies
found, the audit's peak memory at most half the table's in-memory size, its wall time within 10x the ceiling.

    .venv/bin/python benchmarks/bench_audit_ooc.py [--rows 2e7 | 1e8] [--budget 1GB] [--dir /big/disk]

The table is written chunk by chunk (the generator never holds more than one row group), so ``--rows 1e8`` (about
10 GB of Parquet, 8.8 GB in memory) runs on a machine with less memory than the table. The free disk under
``--dir`` is checked first (the Parquet file plus DuckDB's database and spill, which the audit child puts there
too through TMPDIR). The last line is a row for the table in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

D, CHUNK = 20, 500_000
FEATURES = [f"f{i}" for i in range(D)]
DISK_PER_ROW = 260  # bytes of disk per row, measured at 2e7 rows: ~103 Parquet + DuckDB's table and its spill, with room


def rows_arg(text: str) -> int:
    """``--rows 2e7`` or ``--rows 20000000``."""
    value = float(text)
    if value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"--rows {text}: a whole number of rows, e.g. 2e7 or 1e8")
    return int(value)


def check_disk(folder: str, rows: int) -> None:
    """Stop before writing when the disk under ``folder`` cannot hold the table and the audit's database."""
    need, free = rows * DISK_PER_ROW, shutil.disk_usage(folder).free
    if need > free:
        raise SystemExit(f"--rows {rows:,} needs about {need / 1e9:.1f} GB of disk under {folder} (the Parquet file and "
                         f"DuckDB's database), {free / 1e9:.1f} GB is free: pass --dir on a larger disk or fewer --rows")


def generate(path: Path, rows: int, planted: int) -> None:
    """ROWS rows in row groups of CHUNK; ``planted`` rows (spread over the later chunks) copy first-chunk rows."""
    rng = np.random.default_rng(0)
    chunks = -(-rows // CHUNK)
    pool = None
    per_chunk = planted // max(chunks - 1, 1) if chunks > 1 else 0
    with pq.ParquetWriter(path, pa.schema([(f, pa.float32()) for f in FEATURES] + [("label", pa.int64())])) as writer:
        for c in range(chunks):
            n = min(CHUNK, rows - c * CHUNK)
            x = rng.standard_normal((n, D), dtype=np.float32)
            y = (x[:, 0] + x[:, 1] + rng.standard_normal(n, dtype=np.float32) > 0).astype(np.int64)
            if c == 0:
                src = rng.choice(n, min(planted, n), replace=False)
                pool = (x[src].copy(), y[src].copy())
            elif per_chunk:
                take = rng.choice(len(pool[0]), min(per_chunk, n), replace=False)
                where = rng.choice(n, len(take), replace=False)
                x[where], y[where] = pool[0][take], pool[1][take]
            writer.write_table(pa.table({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "label": y}))


def _child_audit(path: str, budget: str, preprocessing: str = "0") -> dict:
    import cleanfit as cf

    started = time.perf_counter()
    transformers = []
    if preprocessing == "1":  # a StandardScaler and a RobustScaler (medians, quartiles) fit on the first row group
        from sklearn.preprocessing import RobustScaler, StandardScaler

        first = pq.ParquetFile(path).read_row_group(0, columns=FEATURES).to_pandas()
        transformers = [StandardScaler().fit(first), RobustScaler().fit(first)]
    report = cf.audit(path, "label", memory=budget, transformers=transformers)
    dup = report.by_check("duplicates")
    return {"seconds": time.perf_counter() - started, "sample": report.sample,
            "duplicates": dup[0].details["overlaps"] if dup else [], "severity": dup[0].severity if dup else None,
            "findings": [(f.check, f.severity) for f in report.findings]}


def _child_duckdb(path: str, threads: int) -> dict:
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    cols = ", ".join(FEATURES + ["label"])
    extra = con.execute(f"SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) AS c FROM read_parquet('{path}') "
                        f"GROUP BY {cols} HAVING count(*) > 1)").fetchone()[0]
    return {"seconds": time.perf_counter() - started, "duplicate_rows": int(extra)}


def measure(kind: str, *args: str, tmp: str | None = None) -> dict:
    """Run one child (its temporary files under ``tmp``); its result and its peak RSS (MB) from os.wait4."""
    began = time.perf_counter()
    env = {**os.environ, **({"TMPDIR": tmp} if tmp else {})}
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, *args], stdout=subprocess.PIPE, text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{kind} child failed ({proc.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall=time.perf_counter() - began, peak_mb=usage.ru_maxrss / 1024)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=rows_arg, default=20_000_000)
    parser.add_argument("--planted", type=int, default=20_000)
    parser.add_argument("--budget", default="1GB")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--preprocessing", action="store_true",
                        help="also verify a StandardScaler and a RobustScaler over all 20 columns (the preprocessing check)")
    parser.add_argument("--child", nargs="+", default=None)
    a = parser.parse_args()
    if a.child:
        kind, *rest = a.child
        result = _child_audit(*rest) if kind == "audit" else _child_duckdb(rest[0], int(rest[1]))
        print(json.dumps(result, default=str))
        return
    check_disk(a.dir or tempfile.gettempdir(), a.rows)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        path = Path(tmp) / "table.parquet"
        t0 = time.perf_counter()
        generate(path, a.rows, a.planted)
        in_memory_mb = a.rows * (D * 4 + 8) / 2**20
        print(f"generated {a.rows:,} rows x {D} float32 + label ({in_memory_mb:,.0f} MB in memory, "
              f"{path.stat().st_size / 2**20:,.0f} MB on disk) in {time.perf_counter() - t0:.1f}s; "
              f"{a.planted:,} planted copies; {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
        ceiling = measure("duckdb", str(path), str(os.cpu_count() or 1))
        audit = measure("audit", str(path), a.budget, "1" if a.preprocessing else "0", tmp=tmp)
        ratio = audit["wall"] / ceiling["wall"]
        found = sum(o["observed_rows"] for o in audit["duplicates"])
        print(f"{'':28}{'wall s':>9}{'peak MB':>10}")
        print(f"{'duckdb duplicate count':28}{ceiling['wall']:9.1f}{ceiling['peak_mb']:10.0f}   "
              f"{ceiling['duplicate_rows']:,} duplicate rows")
        print(f"{'cf.audit out of core' + (' +scalers' if a.preprocessing else ''):28}{audit['wall']:9.1f}{audit['peak_mb']:10.0f}   "
              f"duplicates ({audit['severity']}): {found:,} held-out rows copy an earlier part; sample "
              f"{audit['sample']['rows']:,} rows")
        print(f"ratio audit / duckdb wall: {ratio:.1f}x (goal <= 10x); peak memory {audit['peak_mb']:.0f} MB = "
              f"{audit['peak_mb'] / in_memory_mb:.0%} of the table in memory (goal <= 50%); findings {audit['findings']}")
        load = f"load {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        print("| rows | DuckDB pass s | audit s | ratio | audit peak MB | of the table in memory | planted found | machine |")
        print(f"| {a.rows:,} | {ceiling['wall']:.1f} | {audit['wall']:.1f} | {ratio:.1f}x | {audit['peak_mb']:,.0f} | "
              f"{audit['peak_mb'] / in_memory_mb:.0%} of {in_memory_mb:,.0f} MB | {'yes' if found and audit['severity'] else 'no'} "
              f"({found:,} held-out rows) | {platform.machine()}, {load} |")


if __name__ == "__main__":
    main()
