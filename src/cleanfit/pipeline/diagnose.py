"""The diagnosis of a ``cleanfit train`` run: the loss curve read beside what the run knows.

The run knows more than its loss curve: its own audit, the split, and its ``[train]`` settings. So a
near perfect score is weighed against a quick scikit-learn baseline on the same split (an ``info``
when the audit found no leak and the baseline is about as good), and the advice names config keys
(``train.early_stopping = 3``) and leaves out what the run already does.

The baseline is computed only when the curve looks too good, so an ordinary run pays nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cleanfit.findings import Finding
from cleanfit.pipeline.config import Config
from cleanfit.pipeline.prepare import PreparedData
from cleanfit.training.advice import Advice

__all__ = ["diagnose_run", "baseline_scores", "config_advice", "audit_lines"]

BASELINE_ROWS = 20_000  # a larger train part is subsampled for the baseline (it is a yardstick, not a model)


def diagnose_run(history: Any, data: PreparedData) -> list[Finding]:
    """``history.diagnose`` with the run's config advice, and with its audit and a baseline when too good."""
    advice = config_advice(data.config)
    findings = history.diagnose(advice=advice)
    if data.audit is None or not any(f.check == "too-good" for f in findings):
        return findings
    return history.diagnose(audit=data.audit, baseline=baseline_scores(data), advice=advice)


def config_advice(config: Config) -> Advice:
    """Hints in config keys, knowing the run's early stopping, clipping, warmup and learning rate."""
    train = config.train
    warmup = 0.0 if train.schedule == "constant" else float(train.warmup)
    return Advice.for_config_train(early_stopping=train.early_stopping, clip_grad=float(train.clip_grad),
                                   warmup=warmup, lr=float(train.lr))


def baseline_scores(data: PreparedData) -> dict[str, float]:
    """Validation scores of a simple linear model fit on the preprocessed train rows (empty without val rows).

    Classification: ``LogisticRegression`` (``val_accuracy``, ``val_auc``); regression: ``Ridge``
    (``val_r2``). The same names as the network's metrics, so the two can be compared directly.
    """
    from sklearn.linear_model import LogisticRegression, Ridge  # scikit-learn is heavy: only when too good
    from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

    if data.rows("val") == 0:
        return {}
    X, y = _part(data, "train", BASELINE_ROWS)
    X_val, y_val = _part(data, "val", None)
    if data.task == "regression":
        return {"val_r2": float(r2_score(y_val, Ridge(alpha=1.0).fit(X, y).predict(X_val)))}
    if len(np.unique(y)) < 2:
        return {}
    model = LogisticRegression(max_iter=1000).fit(X, y)
    scores = {"val_accuracy": float(accuracy_score(y_val, model.predict(X_val)))}
    if len(np.unique(y_val)) > 1:
        proba = model.predict_proba(X_val)
        try:
            if proba.shape[1] == 2:
                scores["val_auc"] = float(roc_auc_score(y_val, proba[:, 1]))
            else:
                scores["val_auc"] = float(roc_auc_score(y_val, proba, multi_class="ovr", labels=model.classes_))
        except ValueError:
            pass  # a class of val missing from train: no AUC, the accuracy still compares
    return scores


def _part(data: PreparedData, part: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A part's preprocessed rows (and targets), at most ``limit`` of them drawn uniformly; read block by
    block for a table over audit.memory (the val rows too, up to ``BASELINE_ROWS``)."""
    n = data.rows(part)
    limit = limit if limit is not None or data.large is None else BASELINE_ROWS
    keep = None if limit is None or n <= limit else np.sort(np.random.default_rng(0).choice(n, limit, replace=False))
    if data.large is None:
        X, y = data.arrays[part]
        return (X, y) if keep is None else (X[keep], y[keep])
    X, y = data.large.source(part).take(np.arange(n) if keep is None else keep)
    if data.task == "regression":  # the source gives standardised targets: the baseline compares in the target's units
        mean, std = data.target_scale
        y = y * std + mean
    return X, y


def audit_lines(report: Any) -> list[str]:
    """One console line per critical or warning audit finding (``cleanfit train`` prints them before training).

    >>> from cleanfit.auditing import AuditReport
    >>> from cleanfit.findings import Finding
    >>> audit_lines(AuditReport([Finding("label-order", "warning", "Rows are sorted\\nby label.")]))
    ['cleanfit: audit [warning] label-order: Rows are sorted by label.']
    """
    if report is None:
        return []
    return [f"cleanfit: audit [{f.severity}] {f.check}: {' '.join(f.message.split())}"
            for f in report.findings if f.severity in ("critical", "warning")]
