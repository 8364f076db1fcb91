"""Your own network, with cleanfit's discipline, from Python.

    python examples/custom_model.py          (writes its data first if needed)

Step by step: split before anything looks at the data, audit the split, fit the preprocessing on
the train rows only, train with seeded batches (bf16 autocast, accumulation, warmup + cosine,
clipping, checkpoints, early stopping), read the loss curve, and score the test rows once, at the end.

The same factory also plugs into a config: ``[model] module = "custom_model:residual_mlp"`` (see
custom_model.toml), so ``cleanfit train examples/custom_model.toml`` trains it with the same gates.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class ResidualMLP(nn.Module):
    """An MLP whose hidden blocks add their input back: x + f(x)."""

    def __init__(self, n_features: int, n_outputs: int, width: int = 32, blocks: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.stem = nn.Linear(n_features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(dropout))
            for _ in range(blocks)
        )
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def residual_mlp(n_features: int, n_outputs: int) -> nn.Module:
    """The factory a config names: ``module = "custom_model:residual_mlp"``."""
    return ResidualMLP(n_features, n_outputs)


def main(out: Path = Path("cleanfit-out") / "custom_model") -> dict[str, float]:
    import cleanfit as cf
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from cleanfit.pipeline.demo import write_breast_cancer

    path = HERE / "data" / "breast_cancer.csv"
    if not path.exists():
        write_breast_cancer(path)
    frame = pd.read_csv(path)
    y = (frame.pop("diagnosis") == "malignant").to_numpy().astype(np.int64)
    X = frame

    # 1. Split first: index arrays, nothing computed from the data yet.
    splits = cf.split(len(X), test=0.2, val=0.15, by="stratify", y=y, seed=0)

    # 2. Audit the split before training on it.
    report = cf.audit(X, y, splits)
    print(report)
    if not report.passed:
        raise SystemExit("the audit found leakage; fix the data first")

    # 3. Preprocessing learns its statistics from the train rows only.
    X_train, X_val, X_test = splits.fit_transform(make_pipeline(SimpleImputer(), StandardScaler()), X)
    y_train, y_val, y_test = splits.take(y)

    def batches(X_part: np.ndarray, y_part: np.ndarray, shuffle: bool) -> cf.Batches:
        data = (torch.tensor(X_part, dtype=torch.float32), torch.from_numpy(y_part))
        return cf.Batches(data, 32, shuffle=shuffle, seed=0)

    # 4. Train: the production practices are arguments, not code you write.
    shutil.rmtree(out, ignore_errors=True)  # this script owns its output folder
    cf.seed_everything(0)
    model = residual_mlp(X_train.shape[1], 2)
    trainer = cf.Trainer(
        model,
        torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01),
        loss=nn.functional.cross_entropy,
        precision="bf16",
        accumulate=2,
        clip_grad=1.0,
        schedule=cf.warmup_cosine(warmup=0.1),
        metrics=["accuracy", "auc"],
        checkpoint_dir=out / "checkpoints",
        early_stopping=cf.EarlyStopping(5, restore_best=True),
        seed=0,
        progress=False,
    )
    history = trainer.fit(batches(X_train, y_train, True), batches(X_val, y_val, False), epochs=15)

    # 5. Read the loss curve, then score the test rows once.
    for finding in history.diagnose():
        print(f"[{finding.severity}] {finding.check}: {finding.message}")
    test = trainer.evaluate(batches(X_test, y_test, False))
    print(f"{len(history.epochs)} epochs; test: " + ", ".join(f"{k} {v:.3f}" for k, v in test.items()))
    print(f"checkpoints: {out / 'checkpoints'}")
    return test


if __name__ == "__main__":
    main()
