"""Leakage audit benchmarks: speed at 1,000,000 rows, and recall / false alarms on planted leaks.

    .venv/bin/python benchmarks/bench_audit.py speed [--rows 1000000]
    .venv/bin/python benchmarks/bench_audit.py quality [--seeds 3]
    .venv/bin/python benchmarks/bench_audit.py impact [--rows 1000000]

speed: 1,000,000 rows x 50 numeric columns + a time and a group column, a random split, every check,
one core (thread pools pinned to 1). Reports wall time, the peak resident memory the audit added
beside the data's size, and the duplicate check beside the pandas groupby approach deepchecks'
TrainTestSamplesMix uses (group train and test by all columns, concatenate the unique frames, group
again), on the same data in the same process.

impact: the same table with two leaks planted (a column that is the label with 1% flipped, and 1% of
the test rows copies of train rows), one core: the whole audit without and with ``impact=True``, and as
the peer the fit a user would otherwise run by hand for one with/without number: scikit-learn's
HistGradientBoostingClassifier (defaults) on all the train rows, twice (with and without the column).

quality: every planted leak of tests/auditing/audit_leaks.py at every strength on every dataset and seed:
recall (share of cases the check reports at warning or above, and at critical), and false alarms on
the clean counterparts (share with a warning or critical finding of that check).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "auditing"))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(n: int, d: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = np.empty((n, d))
    for j in range(d):  # column by column: no n x d temporaries
        values[:, j] = rng.standard_normal(n)
    frame = pd.DataFrame(values, columns=[f"f{j}" for j in range(d)], copy=False)
    frame["time"] = np.arange(n, dtype=np.int64)
    frame["group"] = rng.integers(0, n // 20, n)
    y = (values[:, 0] + 0.5 * rng.standard_normal(n) > 0).astype(np.int64)
    return frame, y


def _deepchecks_mix(train: pd.DataFrame, test: pd.DataFrame, columns: list[str]) -> int:
    """Test rows that also appear in train, the way deepchecks' TrainTestSamplesMix finds them."""
    filler = "__na__"
    train, test = train[columns].fillna(filler), test[columns].fillna(filler)

    def uniques(df: pd.DataFrame, tag: str) -> pd.DataFrame:
        groups = df.groupby(columns, dropna=False).groups
        keys = list(groups.keys())
        info = [{"text": tag, "count": len(idx)} for idx in groups.values()]
        return pd.DataFrame(keys, index=range(len(keys)), columns=columns).assign(_info=info)

    both = pd.concat([uniques(train, "train"), uniques(test, "test")], ignore_index=True)
    total = 0
    for _, rows in both.groupby(columns, dropna=False).groups.items():
        if len(rows) > 1:
            total += next(i["count"] for i in both.loc[rows, "_info"] if i["text"] == "test")
    return total


def speed(n: int) -> None:
    from cleanfit.auditing import audit

    frame, y = _data(n, 50)
    data_mb = (frame.memory_usage(index=False).sum() + y.nbytes) / 2**20
    rng = np.random.default_rng(1)
    perm = rng.permutation(n)
    k = n // 10

    class Parts:
        train, val, test = np.sort(perm[2 * k:]), np.sort(perm[k:2 * k]), np.sort(perm[:k])

    before = _rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    report = audit(frame, y, Parts(), time="time", groups="group", seed=0)
    ours, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _rss_mb()
    per_check = {}
    for check in report.checks:
        t = time.perf_counter()
        audit(frame, y, Parts(), time="time", groups="group", checks=[check])
        per_check[check] = time.perf_counter() - t
    t = time.perf_counter()
    audit(frame, y, Parts(), time="time", groups="group", seed=0)
    again = time.perf_counter() - t
    dup_times = []
    for _ in range(3):  # the machine is shared: keep the best of three
        t = time.perf_counter()
        dup = audit(frame, y, Parts(), time="time", groups="group", checks=["duplicates"])
        dup_times.append(time.perf_counter() - t)
    ours_dup = min(dup_times)
    features = [f"f{j}" for j in range(50)]
    with_y = frame[features].assign(y=y)
    t = time.perf_counter()
    peer_count = _deepchecks_mix(with_y.iloc[Parts.train], with_y.iloc[Parts.test], features + ["y"])
    peer = time.perf_counter() - t
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, 1 thread")
    print(f"data: {n:,} rows x 52 columns = {data_mb:,.0f} MB")
    print(f"audit, all checks: {ours:.2f} s first run ({ours_cpu:.2f} s CPU: the machine is shared), {again:.2f} s second run "
          f"({len(report.checks)} checks, {len(report.findings)} findings)")
    print(f"peak RSS before audit {before:,.0f} MB, after {peak:,.0f} MB: audit added {peak - before:,.0f} MB "
          f"= {(peak - before) / data_mb:.2f}x the data; process peak {peak / data_mb:.2f}x the data")
    for check, s in per_check.items():
        print(f"  {check:16s} {s:6.2f} s")
    print(f"duplicates check alone: {ours_dup:.2f} s (best of {', '.join(f'{d:.2f}' for d in dup_times)}); deepchecks-style groupby: {peer:.2f} s "
          f"(test rows in train: ours {dup.findings[0].details['overlaps'][1]['observed_rows'] if dup.findings else 0}, "
          f"groupby {peer_count}); ratio {peer / ours_dup:.1f}x")
    print(str(report))


def impact_speed(n: int) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    from cleanfit.auditing import audit

    frame, y = _data(n, 50)
    rng = np.random.default_rng(2)
    frame["f49"] = np.where(rng.random(n) < 0.01, 1 - y, y) * 3.0 + 1.0  # the label, 1% flipped
    perm = rng.permutation(n)
    k = n // 10

    class Parts:
        train, val, test = np.sort(perm[2 * k:]), np.sort(perm[k:2 * k]), np.sort(perm[:k])

    dst, src = Parts.test[: k // 100], Parts.train[: k // 100]  # 1% of the test rows copy train rows
    frame.iloc[dst] = frame.iloc[src].to_numpy()
    y[dst] = y[src]
    audit(frame, y, Parts(), time="time", groups="group", seed=0)  # warm up: imports, first-touch pages
    t, c = time.perf_counter(), time.process_time()
    plain = audit(frame, y, Parts(), time="time", groups="group", seed=0)
    without, without_cpu = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    report = audit(frame, y, Parts(), time="time", groups="group", seed=0, impact=True)
    with_impact, with_cpu = time.perf_counter() - t, time.process_time() - c
    features = [c for c in frame.columns if c not in ("time", "group")]
    t, c = time.perf_counter(), time.process_time()
    with threadpool_limits(1):
        for cols in (features, features[:-1]):
            HistGradientBoostingClassifier(random_state=0).fit(frame.iloc[Parts.train][cols].to_numpy(np.float32), y[Parts.train])
    peer, peer_cpu = time.perf_counter() - t, time.process_time() - c
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, 1 thread")
    print(f"data: {n:,} rows x 52 columns, a proxy column and {len(dst):,} copied test rows planted")
    print(f"audit without impact: {without:.2f} s ({without_cpu:.2f} s CPU; {len(plain.findings)} findings); with "
          f"impact=True: {with_impact:.2f} s ({with_cpu:.2f} s CPU; impact itself {with_impact - without:.2f} s, {with_cpu - without_cpu:.2f} s CPU)")
    print(f"peer (HistGradientBoosting defaults on all {len(Parts.train):,} train rows, with and without the column): "
          f"{peer:.2f} s ({peer_cpu:.2f} s CPU); ratio (CPU) {peer_cpu / max(with_cpu - without_cpu, 1e-3):.1f}x")
    for f in report.findings:
        if "impact" in f.details:
            i = f.details["impact"]
            print(f"  {f.severity} {f.check} {f.details.get('column', '')}: {i['metric']} with {i['with']} "
                  f"without {i['without']} interval {i['interval']} ({i.get('note', '')})")


SEV = {"critical": 2, "warning": 1, "info": 0}


def quality(seeds: int, only: str | None = None) -> None:
    import audit_leaks as L

    from cleanfit.auditing import audit

    def worst(case: L.Case, check: str, seed: int) -> int:
        r = audit(case.X, case.y, case.splits, checks=[check], seed=seed, **case.kwargs)
        return max((SEV[f.severity] for f in r.by_check(check)), default=-1)

    print("| planted leak | strength | cases | detected (warning+) | critical | clean: false warning+ | clean: false critical |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind, (plant, strengths, names) in L.PLANTS.items():
        if only and not kind.startswith(only) and kind not in only.split(","):
            continue
        check = L.check_of(kind)
        clean = []
        for name in names:
            for seed in range(seeds):
                rng = np.random.default_rng(seed)
                clean.append(worst(L.clean_for(kind, L.clean(name, seed), rng), check, seed))
        clean = np.array(clean)
        for i, strength in enumerate(strengths):
            found = []
            for name in names:
                for seed in range(seeds):
                    rng = np.random.default_rng(seed)
                    found.append(worst(plant(L.clean(name, seed), strength, rng), check, seed))
            found = np.array(found)
            tail = (f"{np.mean(clean >= 1):.0%} | {np.mean(clean == 2):.0%}" if i == 0 else " | ")
            print(f"| {kind} | {strength} | {len(found)} | {np.mean(found >= 1):.0%} | {np.mean(found == 2):.0%} | {tail} |")
    # every check at once on the clean originals (shuffled rows, random split)
    crit, warned = 0, []
    for name in L.DATASETS:
        for seed in range(seeds):
            c = L.clean(name, seed)
            r = audit(c.X, c.y, c.splits, seed=seed)
            crit += not r.passed
            checks = sorted({f.check for f in r.findings if f.severity != "info"})
            if checks:
                warned.append(f"{name} seed {seed}: {', '.join(checks)}")
    print(f"\nall checks on {len(L.DATASETS) * seeds} clean originals: {crit} with a critical finding; "
          f"warnings: {'; '.join(warned) or 'none'}")

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["speed", "quality", "impact"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", default=None, help="quality: only these planted kinds (comma-separated)")
    args = parser.parse_args()
    {"speed": lambda: speed(args.rows), "impact": lambda: impact_speed(args.rows),
     "quality": lambda: quality(args.seeds, args.only)}[args.what]()
