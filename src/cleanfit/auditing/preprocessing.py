"""Check ``preprocessing``: a fitted transformer that learned from rows outside train.

A transformer fit with :meth:`cleanfit.Splits.fit_transform` carries ``cleanfit_fit_record_`` (the
fingerprint of the rows it was fit on); it is trusted when that matches this split's train rows.
Any other fitted scikit-learn transformer (scaler, imputer, encoder, Pipeline, ...) is refit here on
train rows, on train+val rows and on all rows, and its learned statistics are compared with each:
statistics that match all rows mean val/test values shaped the preprocessing. A scaler fit on all
rows is a warning (it rarely moves scores, but it is wrong); a transformer that learned from the
labels (a target encoder) fit on all rows is critical.

The findings' wording is owned here (:func:`record_finding`, :func:`unfitted_finding`, :func:`unmatched_finding`,
:func:`fit_finding`); the out-of-core audit (``ooc_preprocessing``) computes the same statistics in DuckDB
and states its findings through them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

try:
    from sklearn.utils import get_tags
except ImportError:  # scikit-learn < 1.6: no get_tags; needs_y falls back to the class name
    get_tags = None

from cleanfit.auditing.inputs import TRAIN, VAL, AuditData
from cleanfit.findings import Finding
from cleanfit.data.splits import rows_fingerprint

_TOL = 1e-7


def check_preprocessing(data: AuditData) -> list[Finding]:
    assert data.part is not None
    train = data.rows(TRAIN)
    findings = []
    for i, transformer in enumerate(data.transformers):
        finding = _check_one(data, transformer, transformer_name(i, transformer), train)
        if finding is not None:
            findings.append(finding)
    return findings


def transformer_name(i: int, t: Any) -> str:
    """How findings name the ``i``-th transformer: ``transformers[0] (StandardScaler)``."""
    return f"transformers[{i}] ({type(t).__name__})"


def fit_record(t: Any) -> dict[str, Any] | None:
    """The fit-on-train record :meth:`cleanfit.Splits.fit_transform` left on ``t``, or None."""
    record = getattr(t, "cleanfit_fit_record_", None)
    return record if isinstance(record, dict) and "rows_fingerprint" in record else None


def record_finding(name: str, record: dict[str, Any], train_fingerprint: str, n_train: int) -> Finding | None:
    """None when the fit record names these train rows, else the warning that it names other rows."""
    if record["rows_fingerprint"] == train_fingerprint:
        return None
    return Finding("preprocessing", "warning", (
        f"{name} was fit with cleanfit on {record.get('n_rows', '?')} rows, but not on this split's "
        f"{n_train:,} train rows (its fit record does not match). Refit it with "
        "splits.fit_transform(transformer, X) on this split."),
        {"transformer": name, "record": dict(record), "train_rows": n_train})


def is_fitted(t: Any) -> bool:
    try:
        check_is_fitted(t)
    except (NotFittedError, TypeError):
        return False
    return True


def unfitted_finding(name: str) -> Finding:
    return Finding("preprocessing", "info", f"{name} is not fitted; nothing to check. Fit it with splits.fit_transform(transformer, X).",
                   {"transformer": name})


def unmatched_finding(name: str) -> Finding:
    return Finding("preprocessing", "info", (
        f"{name} has no cleanfit fit record and its inputs could not be matched to X's columns, so "
        "which rows it learned from is unknown. Fit it with splits.fit_transform(transformer, X)."),
        {"transformer": name})


def _check_one(data: AuditData, t: Any, name: str, train: np.ndarray) -> Finding | None:
    record = fit_record(t)
    if record is not None:
        return record_finding(name, record, rows_fingerprint(train), len(train))
    if not is_fitted(t):
        return unfitted_finding(name)
    X = _inputs(data, t)
    supervised = needs_y(t)
    if X is None or (supervised and data.y is None):
        return unmatched_finding(name)
    seen = learned_stats(t)
    candidates = {"train rows": train}
    val = data.rows(VAL)
    if len(val):
        candidates["train+val rows"] = np.sort(np.concatenate([train, val]))
    candidates["all rows"] = np.arange(data.n)
    distance = {}
    for label, rows in candidates.items():
        fitted = clone(t)
        try:
            fitted.fit(_take(X, rows), None if data.y is None else data.y[rows])
        except Exception:  # noqa: BLE001 - a transformer that cannot be refit cannot be verified
            return Finding("preprocessing", "info", f"{name} could not be refit on X to verify it; fit it with splits.fit_transform(transformer, X).",
                           {"transformer": name})
        distance[label] = stats_distance(seen, learned_stats(fitted))
    return fit_finding(name, distance, supervised)


def fit_finding(name: str, distance: dict[str, float], supervised: bool, tol: float = _TOL) -> Finding | None:
    """The finding from the distances of ``name``'s statistics to those of a fit on "train rows", "train+val
    rows" (when there is a val part) and "all rows": None when train matches (within ``tol``)."""
    best = min(distance, key=distance.get)
    details = {"transformer": name, "distance": {k: float(f"{v:.3g}") for k, v in distance.items()}, "matches": best}
    if distance["train rows"] <= tol:
        return None
    if distance[best] > tol:
        return Finding("preprocessing", "info", (
            f"{name} has no cleanfit fit record and its statistics match neither the train rows nor all "
            "rows (fit on other data, or randomised). Fit it with splits.fit_transform(transformer, X) "
            "so the audit can prove it saw train rows only."), details)
    sev = "critical" if supervised else "warning"
    why = ("It learned from held-out labels: the held-out score is inflated." if supervised else
           "Held-out values shaped its statistics; this rarely moves scores much, but it is wrong.")
    return Finding("preprocessing", sev, (
        f"{name} was fit on {best}, not on the train rows only. {why} Fit it with "
        "splits.fit_transform(transformer, X), or fit it on X[splits.train]."), details)


def needs_y(t: Any) -> bool:
    """Whether ``t`` learns from the labels (a target encoder): fit on all rows, that is critical."""
    if get_tags is None:
        return type(t).__name__ == "TargetEncoder"
    try:
        return bool(get_tags(t).target_tags.required)
    except Exception:  # noqa: BLE001 - a non-sklearn object
        return type(t).__name__ == "TargetEncoder"


def _inputs(data: AuditData, t: Any) -> Any:
    names = getattr(t, "feature_names_in_", None)
    if names is not None:
        missing = [c for c in names if c not in data.X.columns]
        return None if missing else data.X[list(names)]
    n_in = getattr(t, "n_features_in_", None)
    if n_in == len(data.features):
        return data.X[data.features].to_numpy()
    return None


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def learned_stats(est: Any, prefix: str = "") -> dict[str, Any]:
    """Learned attributes (ending in ``_``) of ``est`` and of the estimators inside it."""
    out: dict[str, Any] = {}
    for key, value in vars(est).items():
        if not key.endswith("_") or key.startswith("_") or key in ("n_features_in_", "feature_names_in_"):
            continue
        if hasattr(value, "get_params") and hasattr(value, "fit"):
            out.update(learned_stats(value, f"{prefix}{key}."))
        elif isinstance(value, (list, tuple)) and value and all(hasattr(v, "fit") for v in value if not isinstance(v, (str, tuple))):
            continue
        else:
            out[prefix + key] = value
    for attr in ("steps", "transformers_"):
        for item in getattr(est, attr, None) or ():
            step_name, step = item[0], item[1]
            if hasattr(step, "fit"):
                out.update(learned_stats(step, f"{prefix}{step_name}."))
    return out


def stats_distance(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest relative difference between the learned statistics in ``a`` and ``b``."""
    worst = 0.0
    for key in a.keys() & b.keys():
        worst = max(worst, _diff(a[key], b[key]))
    return worst


def _diff(u: Any, v: Any) -> float:
    if isinstance(u, (list, tuple)) and isinstance(v, (list, tuple)):
        if len(u) != len(v):
            return 1.0
        return max((_diff(x, y) for x, y in zip(u, v)), default=0.0)
    try:
        a, b = np.asarray(u), np.asarray(v)
    except Exception:  # noqa: BLE001
        return 0.0
    if a.shape != b.shape:
        return 1.0
    if a.dtype.kind in "iufb" and b.dtype.kind in "iufb":
        a, b = a.astype(np.float64), b.astype(np.float64)
        both_nan = np.isnan(a) & np.isnan(b)
        scale = np.maximum(np.abs(a), np.abs(b)) + 1e-12
        rel = np.where(both_nan, 0.0, np.abs(a - b) / scale)
        return float(np.nanmax(rel, initial=0.0)) if rel.size else 0.0
    if a.dtype.kind in "OUS" and b.dtype.kind in "OUS":
        return 0.0 if a.shape == b.shape and bool(np.all(a.astype(str) == b.astype(str))) else 1.0
    return 0.0
