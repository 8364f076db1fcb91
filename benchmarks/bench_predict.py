"""How fast does a trained run predict new rows? ``cf.load_run(...).predictions(frame)`` (the fitted
preprocessing rebuilt from ``model.json`` in NumPy, then the network) against its peer: the fitted
scikit-learn ColumnTransformer that training used (``transformer.transform``), then the same network and
softmax, in the same process on the same frame.

Data: N rows (default 200,000) of 20 numeric columns (5% missing) and 3 text columns (10-50 categories),
a binary target; a run of 1 epoch (the weights do not matter for speed). Best of R repeats (default 3).
Run: ``.venv/bin/python benchmarks/bench_predict.py [--rows N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import cleanfit as cf
from cleanfit.pipeline.config import load_config
from cleanfit.pipeline.features import feature_frame
from cleanfit.pipeline.prepare import prepare
from cleanfit.pipeline.run import train_prepared


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(20)})
    frame = frame.mask(rng.random(frame.shape) < 0.05)
    for i, k in enumerate((10, 30, 50)):
        frame[f"c{i}"] = rng.choice([f"v{j}" for j in range(k)], size=rows)
    frame["y"] = (frame["x0"].fillna(0) + (frame["c0"] == "v1") > 0).astype(int)
    return frame


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        table(5_000).to_csv(root / "train.csv", index=False)
        config = load_config(
            {"data": {"path": str(root / "train.csv"), "target": "y"}},
            ["train.epochs=1", "tracking.backend=none", "model.hidden=[128, 64]"])
        prepared = prepare(config)
        run = train_prepared(prepared, out=root / "run", quiet=True)
        new = table(args.rows, seed=1).drop(columns=["y"])
        loaded = cf.load_run(run.out)
        model = run.model.eval()

        def peer() -> pd.DataFrame:
            features = feature_frame(new.assign(y=0), config)
            X = torch.from_numpy(np.ascontiguousarray(prepared.preprocessor.transform(features), dtype=np.float32))
            with torch.no_grad():
                proba = torch.softmax(model(X).double(), dim=1).numpy()
            return pd.DataFrame({"prediction": proba.argmax(1), "proba_0": proba[:, 0], "proba_1": proba[:, 1]})

        ours = best(lambda: loaded.predictions(new), args.repeats)
        theirs = best(peer, args.repeats)
        assert np.allclose(loaded.predict_proba(new)[:, 1], peer()["proba_1"], atol=1e-6)
        rows = args.rows
        print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
        print(f"rows: {rows:,}; best of {args.repeats}")
        print("| path | rows/s | ratio to the scikit-learn peer |")
        print("| --- | ---: | ---: |")
        print(f"| cf.load_run(...).predictions (JSON preprocessing) | {rows / ours:,.0f} | {theirs / ours:.2f}x |")
        print(f"| fitted ColumnTransformer.transform + network (peer) | {rows / theirs:,.0f} | 1.00x |")


if __name__ == "__main__":
    main()
