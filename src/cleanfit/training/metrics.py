"""Metric functions for ``Trainer(metrics=...)``: ``fn(outputs, targets) -> float``.

Each is computed once per evaluation over the full, concatenated evaluation set (never as a mean of
batch values), on the CPU. ``outputs`` are the model's raw outputs: logits for classification (one
column: the positive class when > 0; several columns: the argmax), predictions for regression.
The Trainer records them as ``val_<name>`` (``val_accuracy``).

>>> import torch
>>> accuracy(torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]]), torch.tensor([0, 1, 1]))
0.6666666666666666
>>> auc(torch.tensor([-1.0, 2.0, 0.5, -3.0]), torch.tensor([0, 1, 1, 0]))
1.0
>>> rmse(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 4.0]))
1.4142135623730951
>>> r2(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0]))
1.0
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from cleanfit.errors import ConfigError, DataError

__all__ = ["accuracy", "auc", "rmse", "mae", "r2", "METRICS", "resolve_metrics"]

Metric = Callable[[Any, Any], float]


def _np(values: Any) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu")
        if values.dtype in (torch.bfloat16, torch.float16):
            values = values.float()
        return values.numpy()
    return np.asarray(values)


def _classes(outputs: np.ndarray) -> np.ndarray:
    """Predicted classes from logits: argmax over columns, or > 0 for a single column."""
    if outputs.ndim == 2 and outputs.shape[1] > 1:
        return outputs.argmax(axis=1)
    return (outputs.reshape(-1) > 0).astype(np.int64)


def _regression_pair(outputs: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    out, tgt = _np(outputs).astype(np.float64), _np(targets).astype(np.float64)
    if out.size != tgt.size:
        raise DataError(f"metric needs one prediction per target: outputs {out.shape} vs targets {tgt.shape}")
    return out.reshape(-1), tgt.reshape(-1)


def _labels(targets: Any, outputs: np.ndarray) -> np.ndarray:
    """Class labels of ``targets``: class indices, 0./1. floats, or one-hot / soft rows (argmax) shaped like
    the outputs."""
    truth = _np(targets)
    if truth.ndim == 2 and truth.shape[1] > 1 and truth.shape == outputs.shape:
        return truth.argmax(axis=1)
    return truth.reshape(-1)


def accuracy(outputs: Any, targets: Any) -> float:
    """The fraction of examples whose predicted class (argmax, or logit > 0) equals the target."""
    out = _np(outputs)
    predicted = _classes(out)
    truth = _labels(targets, out)
    if truth.dtype.kind == "f":
        truth = np.rint(truth).astype(np.int64)  # 0./1. targets of a BCE loss
    if predicted.shape[0] != truth.shape[0]:
        raise DataError(f"accuracy needs one output row per target: {predicted.shape[0]} vs {truth.shape[0]}")
    return float((predicted == truth).mean()) if truth.size else float("nan")


def auc(outputs: Any, targets: Any) -> float:
    """Area under the ROC curve (the value of scikit-learn's ``roc_auc_score``; for several classes the mean of
    the one-vs-rest AUCs of the classes present, so a class missing from a small val set is no crash).
    NaN when undefined: one class present, or non-finite outputs (a diverged model)."""
    out = _np(outputs).astype(np.float64)  # a copy, always
    truth = _labels(targets, out)
    if out.shape[0] != truth.shape[0]:
        raise DataError(f"auc needs one output row per target: {out.shape[0]} vs {truth.shape[0]}")
    if not np.isfinite(out).all():
        return float("nan")
    if out.ndim == 2 and out.shape[1] > 2:
        probs = out  # the softmax, in place in this float64 copy
        probs -= out.max(axis=1, keepdims=True)
        np.exp(probs, out=probs)
        probs /= probs.sum(axis=1, keepdims=True)
        scores = [_rank_auc(probs[:, c], truth == c) for c in range(out.shape[1])]
        present = [s for s in scores if not np.isnan(s)]
        return float(np.mean(present)) if present else float("nan")
    score = out[:, 1] - out[:, 0] if out.ndim == 2 and out.shape[1] == 2 else out.reshape(-1)
    labels = _distinct(truth)
    if labels.size > 2:
        raise DataError(f"auc of a {out.shape[1] if out.ndim == 2 else 1}-column output needs two classes, but the "
                        f"targets hold {labels.size} values; give the model one output column per class")
    return _rank_auc(score, truth == labels[-1]) if labels.size == 2 else float("nan")


def _distinct(truth: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``truth``: counted for small non-negative class indices (no sort of a copy)."""
    if truth.dtype.kind in "biu" and truth.size and 0 <= truth.min() and truth.max() < 1 << 16:
        return np.flatnonzero(np.bincount(truth.astype(np.int64, copy=False)))
    return np.unique(truth)


def _rank_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """The AUC of ``score`` for the boolean ``positive``: the Mann-Whitney U over ``P * N``, tied scores sharing
    their average rank (what ``roc_auc_score``'s trapezoids give, to rounding). NaN with one class present.

    One sort and a few arrays. ``auc`` with it allocates ~48 bytes a binary row at peak (its float64 copy of the
    outputs included) where it did ~85 with ``roc_auc_score``, and runs 1.8-2.5x faster (docs/BENCHMARKS.md,
    "Metrics"); that counts because it runs over the whole val set every epoch, out of core included.

    >>> _rank_auc(np.array([0.1, 0.4, 0.4, 0.8]), np.array([False, False, True, True]))
    0.875
    """
    n = score.size
    p = int(np.count_nonzero(positive))
    if p == 0 or p == n:
        return float("nan")
    order = np.argsort(score)
    ordered = score[order]
    positive = positive[order]
    del order
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))  # where each run of ties begins
    del ordered
    ends = np.append(starts[1:], n)
    positives = np.add.reduceat(positive, starts, dtype=np.int64)
    rank_sum = float(np.dot(positives, (starts + ends + 1) / 2.0))  # ranks 1..n; a run's average (start+1+end)/2
    return (rank_sum - p * (p + 1) / 2.0) / (p * (n - p))


def rmse(outputs: Any, targets: Any) -> float:
    """Root mean squared error."""
    out, tgt = _regression_pair(outputs, targets)
    return float(np.sqrt(np.mean((out - tgt) ** 2)))


def mae(outputs: Any, targets: Any) -> float:
    """Mean absolute error."""
    out, tgt = _regression_pair(outputs, targets)
    return float(np.mean(np.abs(out - tgt)))


def r2(outputs: Any, targets: Any) -> float:
    """Coefficient of determination (1 is perfect, 0 is predicting the mean)."""
    out, tgt = _regression_pair(outputs, targets)
    total = np.sum((tgt - tgt.mean()) ** 2)
    if total == 0:
        return float("nan")
    return float(1.0 - np.sum((tgt - out) ** 2) / total)


METRICS: dict[str, Metric] = {"accuracy": accuracy, "auc": auc, "rmse": rmse, "mae": mae, "r2": r2}


def resolve_metrics(metrics: Any) -> dict[str, Metric]:
    """``Trainer(metrics=...)`` as a name -> function dict.

    Accepts a dict of functions, or a list of names (``"accuracy"``) and functions (named by
    ``__name__``).

    >>> sorted(resolve_metrics(["accuracy", rmse]))
    ['accuracy', 'rmse']
    """
    if metrics is None:
        return {}
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]  # one metric: metrics="accuracy" is not the metrics "a", "c", "c", ...
    if not isinstance(metrics, (dict, list, tuple)):
        raise ConfigError(f"Trainer(metrics={metrics!r}) must be a list of names and functions, or a dict "
                          "name -> fn(outputs, targets) -> float; e.g. metrics=['accuracy', 'auc'].")
    items = metrics.items() if isinstance(metrics, dict) else [(None, m) for m in metrics]
    resolved: dict[str, Metric] = {}
    for name, fn in items:
        if isinstance(fn, str):
            if fn not in METRICS:
                raise ConfigError(f"Trainer(metrics=...): unknown metric {fn!r}; use one of {', '.join(METRICS)} "
                                  "or pass a function fn(outputs, targets) -> float.")
            name, fn = name or fn, METRICS[fn]
        if not callable(fn):
            raise ConfigError(f"Trainer(metrics=...): {fn!r} is not a function fn(outputs, targets) -> float.")
        resolved[name or getattr(fn, "__name__", f"metric{len(resolved)}")] = fn
    return resolved
