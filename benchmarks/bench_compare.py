"""How often does cleanfit.comparison.compare's 95% interval cover the true difference?  (A/A calibration)

Two equally good candidates (true mean difference 0) with seed-level noise; each repeat compares them
on fresh seeds. Coverage = share of repeats whose interval contains 0 (verdict "tie"); 1 - coverage is
the rate of false "A wins"/"B wins" claims. The peer is scipy's own percentile and BCa bootstrap
intervals at the nominal 95% level, on the same differences with the same resampling seed.

    .venv/bin/python benchmarks/bench_compare.py [--repeats 500]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from scipy import stats

import cleanfit as cf


def _scipy_interval(d: np.ndarray, method: str) -> tuple[float, float]:
    res = stats.bootstrap((d,), np.mean, n_resamples=10_000, confidence_level=0.95, method=method,
                          vectorized=True, rng=np.random.default_rng(0))
    return res.confidence_interval


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"{args.repeats} repeats per row")
    print("| noise | seeds | cleanfit (expanded percentile) | scipy percentile | scipy BCa | ms per compare |")
    print("| --- | --- | --- | --- | --- | --- |")
    noises = {
        "normal": lambda rng, n: rng.normal(size=n) - rng.normal(size=n),
        "skewed (exponential)": lambda rng, n: rng.exponential(size=n) - 1.0,
    }
    for noise, draw in noises.items():
        for n in (3, 5, 10, 20):
            rng = np.random.default_rng(12345)
            hits = {"cleanfit": 0, "percentile": 0, "BCa": 0}
            spent = 0.0
            for _ in range(args.repeats):
                d = draw(rng, n)
                start = time.perf_counter()
                result = cf.Comparison(range(n), np.zeros(n), d)
                spent += time.perf_counter() - start
                hits["cleanfit"] += result.verdict == "tie"
                for method in ("percentile", "BCa"):
                    low, high = _scipy_interval(d, method)
                    hits[method] += bool(low <= 0 <= high)
            cov = {k: v / args.repeats for k, v in hits.items()}
            print(f"| {noise} | {n} | {cov['cleanfit']:.3f} | {cov['percentile']:.3f} "
                  f"(ratio {cov['cleanfit'] / cov['percentile']:.3f}) | {cov['BCa']:.3f} | "
                  f"{1000 * spent / args.repeats:.1f} |")


if __name__ == "__main__":
    main()
