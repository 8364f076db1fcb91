"""``audit(impact=True)``: what each critical or warning finding is worth, in test score.

A quick scikit-learn model (HistGradientBoosting, few iterations) is fit on the train rows (a sample of
at most :data:`TRAIN_ROWS`, said in the details). For a column finding (``target-leakage``,
``identifier``, ``text-columns``) a second model is fit without the flagged column, and both are scored
on the same test rows; for a finding about rows (``duplicates``, ``near-duplicates``, ``group``) the one
model is scored on the test rows that have a copy (or their entity) in train against those that do not.
The difference ``with - without`` gets a 95% bootstrap interval over test rows (paired for columns), so a
user sees both how much of the score the leak is and how sure that number is:

    finding.details["impact"] == {"metric": "accuracy", "with": 0.97, "without": 0.71,
                                  "interval": [0.22, 0.30], "train_rows": 455, "test_rows": 114, ...}
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from cleanfit.auditing.inputs import TEST, TRAIN, VAL, AuditData
from cleanfit.auditing.scoring import sample_rows
from cleanfit.auditing.target import id_codes
from cleanfit.findings import Finding

TRAIN_ROWS = 20_000  # the model is fit on at most this many train rows
TEST_ROWS = 50_000  # ... and scored on at most this many held-out rows
_ITERATIONS = 30
_BOOTSTRAP = 1000
_COLUMN_CHECKS = ("target-leakage", "identifier", "text-columns")
_ROW_CHECKS = ("duplicates", "near-duplicates", "group")


def measure_impact(data: AuditData, findings: list[Finding]) -> None:
    """Put ``details["impact"]`` on every critical or warning finding (a ``note`` says why one is not measured).

    Called by ``audit(..., impact=True)``:

    >>> import numpy as np, pandas as pd
    >>> from cleanfit.auditing import audit
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(600, 3)), columns=["a", "b", "c"])
    >>> y = (X["a"] + rng.normal(size=600) > 0).astype(int).to_numpy()
    >>> X["leak"] = y * 2 + 1  # the label, re-coded
    >>> class Parts:
    ...     train, val, test = np.arange(480), np.arange(0), np.arange(480, 600)
    >>> (f,) = audit(X, y, Parts(), checks=["target-leakage"], impact=True).findings
    >>> impact = f.details["impact"]
    >>> impact["metric"], impact["with"], impact["with"] - impact["without"] > 0.1, impact["interval"][0] > 0
    ('accuracy', 1.0, True, True)
    """
    worth = [f for f in findings if f.severity in ("critical", "warning")]
    if not worth:
        return
    reason = _cannot_measure(data)
    flags = _row_flags(data) if reason is None else {}
    for f in worth:
        if reason is None and f.check in _COLUMN_CHECKS and _columns_of(data, f):
            f.details["impact"] = _column_impact(data, _columns_of(data, f))
        elif reason is None and f.check in _ROW_CHECKS and f.check in flags:
            f.details["impact"] = _row_impact(data, flags[f.check], f.check)
        else:
            why = reason or f"a {f.check} finding is not about columns or copied rows; its impact is not measured"
            f.details["impact"] = {"metric": _metric(data), "with": None, "without": None, "interval": None, "note": why}


def _cannot_measure(data: AuditData) -> str | None:
    if data.y is None or data.part is None:
        return "impact needs a target and a split"
    if not data.features:
        return "impact needs feature columns"
    if not np.any(data.part == TEST) and not np.any(data.part == VAL):
        return "impact needs held-out rows"
    return None


def _metric(data: AuditData) -> str:
    return "accuracy" if data.task == "classification" else "R²"


def _columns_of(data: AuditData, f: Finding) -> list[Any]:
    names = {str(c): c for c in data.features}
    column = f.details.get("column")
    return [names[column]] if column in names else []


# -- the model and its rows ----------------------------------------------------------------------------------


def _rows(data: AuditData) -> tuple[np.ndarray, np.ndarray]:
    """``(train rows, test rows)``, sampled (cached): the test part, or val when there is no test part.

    A train sample keeps every train row that has an exact copy among the sampled test rows, so the
    model sees what the duplicates finding is about.
    """
    if "impact_rows" not in data.cache:
        assert data.part is not None
        held = TEST if np.any(data.part == TEST) else VAL
        test = sample_rows(data.rows(held), data.seed + 6, TEST_ROWS)
        train = sample_rows(data.rows(TRAIN), data.seed + 5, TRAIN_ROWS)
        if len(train) < np.sum(data.part == TRAIN) and "exact" in data.cache:
            inv, n_keys = data.cache["exact"]
            in_test = np.zeros(n_keys, dtype=bool)
            in_test[inv[test]] = True
            sources = np.flatnonzero((data.part == TRAIN) & in_test[inv])
            train = np.union1d(train, sources)
        data.cache["impact_rows"] = (train, test)
    return data.cache["impact_rows"]


def _matrix(data: AuditData, rows: np.ndarray) -> np.ndarray:
    """The feature columns of ``rows`` as float32. Text is coded the way the ``identifier`` check reads
    it (``target.id_codes``: sorted, digit runs as numbers), so an id issued in class order keeps that
    order in the model, and its worth is measured, not hidden by codes in order of appearance."""
    out = np.empty((len(rows), len(data.features)), dtype=np.float32)
    for j, c in enumerate(data.features):
        out[:, j] = id_codes(data, c)[rows]
    return out


def _predictions(data: AuditData, keep: np.ndarray) -> np.ndarray:
    """Test-row predictions of a model fit on the train rows with the feature columns ``keep`` (a mask)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    assert data.y is not None
    train, test = _rows(data)
    if "impact_X" not in data.cache:
        data.cache["impact_X"] = (_matrix(data, train), _matrix(data, test))
    X_train, X_test = data.cache["impact_X"]
    kind = HistGradientBoostingClassifier if data.task == "classification" else HistGradientBoostingRegressor
    model = kind(max_iter=_ITERATIONS, early_stopping=False, random_state=data.seed)
    y_train = data.y[train]
    if not keep.any() or (data.task == "classification" and len(np.unique(y_train)) < 2):
        return np.full(len(test), _constant(y_train, data.task), dtype=object if y_train.dtype.kind == "O" else None)
    # one thread: OpenMP's spinning workers make a small fit ten times slower on a busy machine
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        model.fit(X_train[:, keep], y_train)
        return model.predict(X_test[:, keep])


def _constant(y: np.ndarray, task: str | None) -> Any:
    if task == "classification":
        values, counts = np.unique(y, return_counts=True)
        return values[np.argmax(counts)]
    return float(np.mean(y))


def _all_features(data: AuditData) -> np.ndarray:
    if "impact_all" not in data.cache:
        data.cache["impact_all"] = _predictions(data, np.ones(len(data.features), dtype=bool))
    return data.cache["impact_all"]


# -- scores and intervals ------------------------------------------------------------------------------------


def _per_row(data: AuditData, pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row loss pieces: 1/0 correct for accuracy, squared errors for R²."""
    if data.task == "classification":
        return (pred == y).astype(np.float64)
    return (np.asarray(pred, dtype=np.float64) - y) ** 2


def _score(data: AuditData, piece: np.ndarray, y: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray | float:
    """The metric of rows (``idx``: a (B, k) array of bootstrap row draws gives B scores)."""
    if idx is None:
        idx = np.arange(len(piece))[None, :]
        return float(_score(data, piece, y, idx)[0])
    if data.task == "classification":
        return piece[idx].mean(axis=1)
    yy = y[idx]
    total = ((yy - yy.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    return 1.0 - piece[idx].sum(axis=1) / np.where(total > 0, total, np.nan)


def _draws(rng: np.random.Generator, n: int) -> np.ndarray:
    size = _BOOTSTRAP if n * _BOOTSTRAP <= 20_000_000 else max(100, 20_000_000 // n)
    return rng.integers(0, n, size=(size, n))


def _interval(diffs: np.ndarray) -> list[float] | None:
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < 10:
        return None
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return [round(float(lo), 4), round(float(hi), 4)]


def _column_impact(data: AuditData, columns: list[Any]) -> dict[str, Any]:
    assert data.y is not None
    train, test = _rows(data)
    y = data.y[test] if data.task == "classification" else data.y[test].astype(np.float64)
    keep = np.array([c not in set(columns) for c in data.features])
    with_piece = _per_row(data, _all_features(data), y)
    without_piece = _per_row(data, _predictions(data, keep), y)
    idx = _draws(np.random.default_rng(data.seed + 7), len(test))
    diffs = _score(data, with_piece, y, idx) - _score(data, without_piece, y, idx)
    return {"metric": _metric(data), "with": round(_score(data, with_piece, y), 4),
            "without": round(_score(data, without_piece, y), 4), "interval": _interval(np.asarray(diffs)),
            "compared": f"the test score with and without {', '.join(repr(str(c)) for c in columns)}",
            **_sizes(data)}


def _row_impact(data: AuditData, copied: np.ndarray, check: str) -> dict[str, Any]:
    assert data.y is not None
    _, test = _rows(data)
    y = data.y[test] if data.task == "classification" else data.y[test].astype(np.float64)
    piece = _per_row(data, _all_features(data), y)
    flag = copied[test]
    result: dict[str, Any] = {"metric": _metric(data), "with": None, "without": None, "interval": None,
                              "compared": f"test rows with a copy in train ({int(flag.sum()):,}) against those without "
                                          f"({int((~flag).sum()):,})", **_sizes(data)}
    if flag.sum() < 2 or (~flag).sum() < 2:
        result["note"] = "too few test rows on one side to compare"
        return result
    rng = np.random.default_rng(data.seed + 8)
    a, b = np.flatnonzero(flag), np.flatnonzero(~flag)
    da, db = a[_draws(rng, len(a))], b[_draws(rng, len(b))]
    m = min(len(da), len(db))
    diffs = np.asarray(_score(data, piece, y, da[:m])) - np.asarray(_score(data, piece, y, db[:m]))
    result.update({"with": round(_score(data, piece[a], y[a]), 4), "without": round(_score(data, piece[b], y[b]), 4),
                   "interval": _interval(diffs)})
    if check == "group":
        result["compared"] = result["compared"].replace("a copy", "their entity")
    return result


def _sizes(data: AuditData) -> dict[str, Any]:
    assert data.part is not None
    train, test = _rows(data)
    total = int(np.sum(data.part == TRAIN))
    sizes: dict[str, Any] = {"train_rows": len(train), "test_rows": len(test),
                             "model": f"HistGradientBoosting, {_ITERATIONS} iterations"}
    if len(train) < total:
        sizes["note"] = (f"model fit on a uniform sample of the train rows ({len(train):,} of {total:,}, with every "
                         "train row that has an exact copy in the test rows)")
    return sizes


def _row_flags(data: AuditData) -> dict[str, np.ndarray]:
    """Per row check: a mask of the rows that have a copy (or their entity) in train (cached in ``copied_rows``)."""
    assert data.part is not None
    flags: dict[str, np.ndarray] = data.cache.setdefault("copied_rows", {})
    if "duplicates" not in flags and "exact" in data.cache:
        inv, n_keys = data.cache["exact"]
        in_train = np.zeros(n_keys, dtype=bool)
        in_train[inv[data.part == TRAIN]] = True
        flags["duplicates"] = in_train[inv] & (data.part != TRAIN)
    if "group" not in flags and data.groups is not None:
        in_train = np.zeros(int(data.groups.max()) + 2, dtype=bool)
        in_train[data.groups[data.part == TRAIN] + 1] = True
        flags["group"] = in_train[data.groups + 1] & (data.groups >= 0) & (data.part != TRAIN)
    return flags
