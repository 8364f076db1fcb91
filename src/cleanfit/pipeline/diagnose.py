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

    X, y = data.arrays["train"]
    X_val, y_val = data.arrays["val"]
    if len(y_val) == 0:
        return {}
    if len(y) > BASELINE_ROWS:
        keep = np.random.default_rng(0).choice(len(y), BASELINE_ROWS, replace=False)
        X, y = X[keep], y[keep]
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
