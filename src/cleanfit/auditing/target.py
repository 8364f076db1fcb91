"""Checks ``target-leakage`` and ``identifier``: columns that give the answer away.

``target-leakage``: one feature alone predicts the target (nearly) perfectly, cross-validated on train
rows; its missingness alone encodes the target; or it equals the target of a neighbouring row in time
(a future label copied into the features). ``identifier``: a row-id-like column (unique, monotone, or
the DataFrame's index) that predicts the target: the row order carries the label, and the model will
learn an id that means nothing on new data.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from cleanfit.auditing.inputs import AuditData, feature_codes
from cleanfit.auditing.scoring import Scorer, sample_rows
from cleanfit.findings import Finding

# single-feature score (AUC for classes, R² for regression) at which a feature is a target proxy
CRITICAL = {"classification": 0.995, "regression": 0.98}
WARNING = {"classification": 0.97, "regression": 0.9}
# an identifier predicts the target when it scores this far above chance (0.5 AUC / 0.0 R²)
ID_CRITICAL = {"classification": 0.85, "regression": 0.5}
ID_WARNING = {"classification": 0.65, "regression": 0.15}
_ID_NAME = re.compile(r"(^|[_\W])(id|ids|uuid|guid|key|idx|index|row|record|rowid)($|[_\W])|[a-z]Id$|ID$", re.I)
_SHIFTS = (1, 2, 3, -1, -2, -3)
_SHIFT_ROWS = 100_000
_METRIC = {"classification": "AUC", "regression": "R²"}


def _scorer(data: AuditData) -> tuple[Scorer, np.ndarray] | None:
    if "scorer" not in data.cache:
        assert data.y is not None and data.task is not None
        rows = sample_rows(data.train_rows(), data.seed)
        scorer = Scorer(data.y[rows], data.task, data.seed)
        data.cache["scorer"] = (scorer, rows) if scorer.usable else None
    return data.cache["scorer"]


def identifier_columns(data: AuditData) -> list[Any]:
    """Feature columns that look like row ids: unique integers/strings, monotone integers, id-like names."""
    if "ids" in data.cache:
        return data.cache["ids"]
    found = []
    n = data.n
    for c in data.features:
        s = data.X[c]
        kind = s.dtype.kind
        if kind in "fcbMm" or isinstance(s.dtype, pd.CategoricalDtype) and len(s.dtype.categories) < 0.5 * n:
            continue
        if kind == "O" and _looks_like_dates(s):
            continue
        unique = s.nunique(dropna=True) / n
        monotone = kind in "iu" and (s.is_monotonic_increasing or s.is_monotonic_decreasing)
        named = bool(_ID_NAME.search(str(c)))
        if unique >= 0.95 or (monotone and unique >= 0.5) or (named and unique >= 0.5):
            found.append(c)
    data.cache["ids"] = found
    return found


def _looks_like_dates(s: pd.Series) -> bool:
    """Whether text values parse as dates (a timestamp column read from CSV is not a row id)."""
    # bytes are text of an unknown encoding: decoded leniently (str() of undecodable bytes would raise)
    sample = pd.Series([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in s.dropna().head(50)],
                       dtype=object)
    if sample.empty:
        return False
    try:
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    except (ValueError, TypeError):
        return False
    return bool(parsed.notna().mean() >= 0.9)


def check_target_leakage(data: AuditData) -> list[Finding]:
    assert data.task is not None
    made = _scorer(data)
    skip = set(identifier_columns(data)) if "identifier" in data.requested else set()
    findings: list[Finding] = []
    metric = _METRIC[data.task]
    where = "train rows" if data.part is not None else "all rows (no split given)"
    if made is not None:
        scorer, rows = made
        for c in data.features:
            if c in skip:
                continue
            x = feature_codes(data, c)[rows]
            missing = np.isnan(x)
            score = scorer.score(x, screen=WARNING[data.task])
            miss_score = scorer.separation(missing) if 0 < missing.mean() < 1 else None
            if miss_score is not None and miss_score >= WARNING["classification"]:
                sev = "critical" if miss_score >= CRITICAL["classification"] else "warning"
                findings.append(Finding("target-leakage", sev, (
                    f"Whether column {c!r} is missing predicts the target (AUC {miss_score:.3f} on "
                    f"{len(rows):,} {where}): the value was probably filled in only "
                    "for some outcomes. Drop the column or fill it the same way for every row, before "
                    "the outcome is known."), {"column": str(c), "score": round(miss_score, 4), "metric": "AUC", "via": "missingness"}))
            elif score >= WARNING[data.task]:
                sev = "critical" if score >= CRITICAL[data.task] else "warning"
                advice = ("It is a target proxy: drop it, or make sure its value is known before the outcome."
                          if sev == "critical" else
                          "Strong single features happen, but confirm it is not derived from the label.")
                findings.append(Finding("target-leakage", sev, (
                    f"Column {c!r} alone predicts the target ({metric} {score:.3f}, a shallow tree "
                    f"cross-validated on {len(rows):,} {where}). {advice}"),
                    {"column": str(c), "score": round(score, 4), "metric": metric, "via": "value"}))
    findings += _shifted_target(data, skip, {f.details["column"] for f in findings})
    return findings


def _shifted_target(data: AuditData, skip: set, already: set) -> list[Finding]:
    """Features equal to the target ``k`` rows later (a future label) or earlier, in time order."""
    assert data.y is not None
    order = np.argsort(data.time, kind="stable") if data.time is not None else np.arange(data.n)
    order = order[:_SHIFT_ROWS]
    y = data.y[order]
    numeric_y = y.dtype.kind in "iufb"
    yv = y.astype(np.float64) if numeric_y else pd.factorize(y)[0].astype(np.float64)
    findings = []
    for c in data.features:
        if c in skip or str(c) in already or data.X[c].dtype.kind not in "iufb":
            continue
        x = data.X[c].to_numpy(dtype=np.float64, na_value=np.nan)[order]
        base = _agreement(x, yv, 0, data.task)
        for k in _SHIFTS:
            agree = _agreement(x, yv, k, data.task)
            if agree >= 0.99 and agree > base + 0.02:
                future = k > 0
                sev = "critical" if future else "info"
                what = (f"the target of the row {k} step{'s' * (k > 1)} later" if future
                        else f"the target of the row {-k} step{'s' * (k < -1)} earlier (a lagged target)")
                advice = ("A future label is in the features: rebuild the column from data available at "
                          "prediction time." if future else
                          "Fine for forecasting if that label is known at prediction time; otherwise drop it.")
                order_word = "time" if data.time is not None else "stored row"
                findings.append(Finding("target-leakage", sev, (
                    f"Column {c!r} equals {what} in {order_word} order ({agree:.1%} agreement vs "
                    f"{base:.1%} with the row's own target). {advice}"),
                    {"column": str(c), "shift": k, "agreement": round(agree, 4), "via": "shifted-target"}))
                break
    return findings


def _agreement(x: np.ndarray, y: np.ndarray, k: int, task: str | None) -> float:
    """How well ``x[t]`` matches ``y[t + k]``: share equal (classes) or squared correlation."""
    if k > 0:
        a, b = x[:-k], y[k:]
    elif k < 0:
        a, b = x[-k:], y[:k]
    else:
        a, b = x, y
    ok = ~np.isnan(a)
    if ok.sum() < 20:
        return 0.0
    a, b = a[ok], b[ok]
    if task == "classification":
        return float(np.mean(a == b))
    if np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1] ** 2)


def check_identifier(data: AuditData) -> list[Finding]:
    candidates: list[tuple[str, np.ndarray]] = [(str(c), feature_codes(data, c)) for c in identifier_columns(data)]
    index = data.X.index
    default = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    if not default and index.nunique() >= 0.95 * data.n:
        codes = index.to_numpy()
        if codes.dtype.kind not in "iuf":
            codes = pd.factorize(codes, sort=True)[0]
        candidates.append(("the index", np.asarray(codes, dtype=np.float64)))
    if not candidates:
        return []
    made = _scorer(data) if data.y is not None else None
    findings = []
    for name, values in candidates:
        is_index = name == "the index"
        label = name if is_index else f"column {name!r}"
        if made is None:
            if not is_index:
                findings.append(Finding("identifier", "info", (
                    f"{label.capitalize()} looks like a row id; ids carry no signal on new data, so drop it "
                    "from the features."), {"column": name}))
            continue
        scorer, rows = made
        score = scorer.score(values[rows])
        metric = _METRIC[scorer.task]
        if score >= ID_CRITICAL[scorer.task]:
            sev = "critical"
        elif score >= ID_WARNING[scorer.task]:
            sev = "warning"
        else:
            sev = "info"
        if is_index:  # not a feature unless it becomes one (reset_index, a saved file): a warning at most
            if sev == "info":
                continue
            sev = "warning"
        verdict = (f"and it predicts the target ({metric} {score:.3f} on train rows): the rows were "
                   "ordered or numbered by outcome, and a model would learn the id. Drop it from the "
                   "features (and shuffle before splitting)."
                   if sev != "info" else
                   f"with no real signal ({metric} {score:.3f}); drop it from the features anyway.")
        if is_index:
            verdict += " The index is not a feature by itself; this matters once it becomes a column (reset_index, a saved CSV)."
        findings.append(Finding("identifier", sev, f"{label.capitalize()} looks like a row id {verdict}",
                                {"column": name, "score": round(score, 4), "metric": metric}))
    return findings
