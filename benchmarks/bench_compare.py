"""The compare verdict against its peers: false winners for two equal candidates (A/A) and power, by seeds.

Each repetition draws the paired differences ``d = b - a`` of one comparison on fresh seeds and asks each
method for a verdict at 95%. A/A: the candidates are equally good, so any winner is false (at most 5% is
honest). Power: B is better by one standard deviation of the paired noise (a paired t-test finds that
80% of the time at 10 seeds). Methods, on the same differences:

- cleanfit: :class:`cleanfit.Comparison`'s verdict (the paired t interval);
- scipy percentile / BCa bootstrap: a winner when :func:`scipy.stats.bootstrap`'s 95% interval excludes 0;
- paired t-test: :func:`scipy.stats.ttest_rel` p < 0.05 (the verdict cleanfit should equal, as a check);
- sign-flip permutation test: exact (all 2^n sign flips) up to 12 seeds, 4,000 random flips above.

Noise of each candidate at a seed: shared seed noise (which pairing removes) plus its own noise, normal or
skewed (exponential). Two equal candidates are exchangeable, so ``d`` is symmetric. The last rows are the
hard case: ``d`` itself skewed with mean 0 (e.g. B has a rare big failure and a usual small gain), which no
test of the mean can make exact at a few seeds.

    .venv/bin/python benchmarks/bench_compare.py [--repeats 1000] [--resamples 2000]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time

import numpy as np
from scipy import stats

import cleanfit as cf

SEEDS = (2, 3, 5, 10, 20)
METHODS = ("cleanfit", "percentile", "BCa", "paired t", "sign-flip")


def _own_noise(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=n) if kind == "normal" else rng.exponential(size=n) - 1.0


def _differences(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """b - a for one comparison with true difference 0 (the shared seed noise cancels exactly)."""
    if kind == "skewed d (not exchangeable)":
        return rng.exponential(size=n) - 1.0
    return _own_noise(kind, rng, n) - _own_noise(kind, rng, n)


def _sd(kind: str) -> float:
    return 1.0 if kind == "skewed d (not exchangeable)" else float(np.sqrt(2.0))


_FLIPS: dict[int, np.ndarray] = {}


def _sign_flip_p(d: np.ndarray, rng: np.random.Generator) -> float:
    n = d.size
    if n <= 12:
        flips = _FLIPS.setdefault(n, np.array(list(itertools.product((1.0, -1.0), repeat=n))))
    else:
        flips = rng.choice((1.0, -1.0), size=(4000, n))
    return float(np.mean(np.abs(flips @ d) >= abs(d.sum()) - 1e-12))


def _winner(method: str, d: np.ndarray, rng: np.random.Generator, resamples: int) -> bool:
    if method == "cleanfit":
        return cf.Comparison(range(d.size), np.zeros(d.size), d).verdict != "tie"
    if method == "paired t":
        return bool(stats.ttest_rel(d, np.zeros(d.size)).pvalue < 0.05)
    if method == "sign-flip":
        return _sign_flip_p(d, rng) < 0.05
    if np.all(d == d[0]):
        return bool(d[0] != 0)
    res = stats.bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=0.95, method=method,
                          vectorized=True, rng=rng)
    low, high = res.confidence_interval
    return not (low <= 0 <= high)


def _cell(kind: str, n: int, shift: float, repeats: int, resamples: int) -> dict[str, float]:
    rng = np.random.default_rng([n, int(shift * 1000), len(kind)])
    hits = dict.fromkeys(METHODS, 0)
    for _ in range(repeats):
        d = _differences(kind, rng, n) + shift
        for method in METHODS:
            hits[method] += _winner(method, d, rng, resamples)
    return {m: h / repeats for m, h in hits.items()}


def _cost(repeats: int) -> None:
    """Milliseconds per verdict on 10 seeds: the whole cleanfit.Comparison (interval, p value, verdict and
    seeds_needed) against scipy's ttest_rel alone, interleaved, on the same differences."""
    rng = np.random.default_rng(14)
    samples = [rng.normal(size=10) for _ in range(repeats)]
    spent = {"cleanfit.Comparison": 0.0, "scipy ttest_rel": 0.0}
    cf.Comparison(range(10), np.zeros(10), samples[0]), stats.ttest_rel(samples[0], np.zeros(10))  # imports
    for d in samples:
        start = time.perf_counter()
        cf.Comparison(range(d.size), np.zeros(d.size), d)
        middle = time.perf_counter()
        stats.ttest_rel(d, np.zeros(d.size))
        spent["cleanfit.Comparison"] += middle - start
        spent["scipy ttest_rel"] += time.perf_counter() - middle
    ms = {k: 1000 * v / repeats for k, v in spent.items()}
    print("\nCost: ms per verdict on 10 seeds\n")
    print("| cleanfit.Comparison | scipy ttest_rel | cleanfit / scipy |\n| ---: | ---: | ---: |")
    print(f"| {ms['cleanfit.Comparison']:.3f} | {ms['scipy ttest_rel']:.3f} | "
          f"{ms['cleanfit.Comparison'] / ms['scipy ttest_rel']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples per interval")
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
          f"{args.repeats} repeats a cell, {args.resamples} bootstrap resamples")
    started = time.perf_counter()
    for title, power in (("A/A: share of comparisons naming a (false) winner; honest is <= 0.05", False),
                         ("Power: share finding a true difference of 1 SD of the paired noise", True)):
        print(f"\n{title}\n")
        print("| noise | seeds | " + " | ".join(METHODS) + " | cleanfit / paired t |")
        print("| --- | ---: |" + " ---: |" * (len(METHODS) + 1))
        kinds = ("normal", "skewed") + (() if power else ("skewed d (not exchangeable)",))
        for kind in kinds:
            for n in SEEDS:
                rates = _cell(kind, n, _sd(kind) if power else 0.0, args.repeats, args.resamples)
                ratio = rates["cleanfit"] / rates["paired t"] if rates["paired t"] else float("nan")
                print(f"| {kind} | {n} | " + " | ".join(f"{rates[m]:.3f}" for m in METHODS) + f" | {ratio:.2f} |",
                      flush=True)
    _cost(2000)
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
