"""Check ``preprocessing`` out of core: a fitted transformer's statistics against DuckDB's over train / all rows.

The in-memory check refits a clone on train rows, on train+val rows and on all rows and compares the learned
statistics. A table over the budget cannot be refit on, so here the statistics those fits would learn are computed
in SQL over the transformer's input columns (stored as ``p0, p1, ...`` in the table ``pre`` by the one streaming
pass, joined once with each row's part), for the transformers whose statistics are plain aggregates:

    StandardScaler   n_samples_seen_, mean_, var_, scale_          count, avg, var_pop
    MinMaxScaler     n_samples_seen_, data_min_, data_max_, ...     count(*), min, max
    MaxAbsScaler     n_samples_seen_, max_abs_, scale_              count(*), max(abs)
    RobustScaler     center_, scale_                                quantile_cont (numpy's "linear")
    SimpleImputer    statistics_ (mean, median, most_frequent, constant; missing_values NaN)

and the finding is stated by :mod:`~cleanfit.auditing.preprocessing`'s own functions (same id, message, severity).
A fit record (``Splits.fit_transform``) is checked against the train rows' fingerprint, streamed from DuckDB. Other
transformers (encoders, Pipelines, ColumnTransformers) get an info finding saying they cannot be verified out of
core. Statistics recomputed in double precision agree with scikit-learn's to float rounding, not bit for bit, so
the tolerance is :data:`TOL` (float32 inputs round at ~6e-8), not the in-memory ``1e-7``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from cleanfit.auditing import preprocessing as pre
from cleanfit.findings import Finding

TOL = 1e-6
KINDS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "SimpleImputer")  # see _EXPECTED


def input_columns(t: Any, features: Sequence[str]) -> list[str] | None:
    """The table columns ``t`` was fit on (``feature_names_in_``, else all features when the count matches).

    >>> import pandas as pd
    >>> from sklearn.preprocessing import StandardScaler
    >>> scaler = StandardScaler().fit(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 5.0]}))
    >>> input_columns(scaler, ["a", "b", "c"]), input_columns(scaler, ["x", "y"])
    (['a', 'b'], None)
    >>> input_columns(StandardScaler().fit([[1.0, 2.0], [3.0, 4.0]]), ["x", "y"])  # fit on an array: by count
    ['x', 'y']
    """
    names = getattr(t, "feature_names_in_", None)
    if names is not None:
        return [str(c) for c in names] if all(str(c) in features for c in names) else None
    return list(features) if getattr(t, "n_features_in_", None) == len(features) else None


def _supported(t: Any) -> bool:
    if type(t).__name__ not in KINDS or type(t).__module__.split(".")[0] != "sklearn":
        return False
    if type(t).__name__ == "SimpleImputer":
        mv = t.missing_values
        return isinstance(mv, float) and math.isnan(mv) and t.strategy in ("mean", "median", "most_frequent", "constant")
    return True


def stored_columns(transformers: Sequence[Any], features: Sequence[str], numeric: Sequence[str]) -> list[str]:
    """The columns the pass stores for the check: inputs of the fitted, supported transformers without a fit
    record (numeric ones only; a transformer with a text input is not verified out of core)."""
    keep: dict[str, None] = {}
    for t in transformers:
        cols = input_columns(t, features)
        if pre.fit_record(t) is None and pre.is_fitted(t) and _supported(t) and cols and set(cols) <= set(numeric):
            keep.update(dict.fromkeys(cols))
    return list(keep)


def check(con: Any, transformers: Sequence[Any], features: Sequence[str], stored: Sequence[str],
          sizes: list[int]) -> list[Finding]:
    """Check ``preprocessing`` over the tables ``audit`` and ``pre`` (``stored[j]`` is its column ``p{j}``)."""
    import duckdb

    findings: list[Finding] = []
    train_fp: str | None = None
    if stored:  # each row's part beside its values, once (a join DuckDB spills to disk), for the aggregates
        con.execute("CREATE TABLE pre_part AS SELECT a.part, p.* EXCLUDE (row) FROM pre p JOIN audit a USING (row)")
        con.execute("DROP TABLE pre")
    for i, t in enumerate(transformers):
        name = pre.transformer_name(i, t)
        record = pre.fit_record(t)
        if record is not None:
            train_fp = train_fp or train_fingerprint(con)
            found = pre.record_finding(name, record, train_fp, sizes[0])
        elif not pre.is_fitted(t):
            found = pre.unfitted_finding(name)
        elif (cols := input_columns(t, features)) is None:
            found = pre.unmatched_finding(name)
        elif not _supported(t) or not set(cols) <= set(stored):
            found = _unverifiable(name, t)
        else:
            where = {"train rows": "part = 0", **({"train+val rows": "part IN (0, 1)"} if sizes[1] else {}),
                     "all rows": "TRUE"}
            seen = pre.learned_stats(t)
            cols_sql = [f"p{list(stored).index(c)}" for c in cols]
            try:
                distance = {label: pre.stats_distance(seen, _expected(con, t, cols_sql, cond)) for label, cond in where.items()}
            except duckdb.OutOfMemoryException:
                found = _too_large(name, t)
            else:
                found = pre.fit_finding(name, distance, pre.needs_y(t), tol=TOL)
        if found is not None:
            findings.append(found)
    return findings


def _unverifiable(name: str, t: Any) -> Finding:
    return Finding("preprocessing", "info", (
        f"{name} cannot be verified out of core: the audit recomputes the statistics of {', '.join(KINDS)} "
        "(numeric inputs) in DuckDB, not of this transformer. Fit it with splits.fit_transform(transformer, X) "
        "so its fit record proves which rows it saw."), {"transformer": name, "out_of_core": True})


def _too_large(name: str, t: Any) -> Finding:
    return Finding("preprocessing", "info", (
        f"{name} was not verified: DuckDB ran out of its memory limit (a quarter of the audit's memory budget) "
        f"computing the statistics {type(t).__name__} learns (quantiles keep every value of a column in memory). "
        "Raise memory= (--memory, [audit] memory) to verify it."), {"transformer": name, "out_of_core": True})


def train_fingerprint(con: Any) -> str:
    """:func:`cleanfit.data.splits.rows_fingerprint` of the train rows, streamed from DuckDB."""
    digest = hashlib.sha256()
    for batch in con.cursor().sql("SELECT row FROM audit WHERE part = 0 ORDER BY row").to_arrow_reader(1 << 20):
        digest.update(batch.column(0).to_numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def _aggregate(con: Any, cols: list[str], cond: str, what: str) -> np.ndarray:
    """One aggregate (``what`` with ``{c}`` for the column) of each column over the rows where ``cond``."""
    sql = ", ".join(what.format(c=f"{c}::DOUBLE") + f" FILTER (WHERE {cond})" for c in cols)
    row = con.execute(f"SELECT {sql} FROM pre_part").fetchall()[0]
    return np.array([np.nan if v is None else v for v in row], dtype=np.float64)


def _quantiles(con: Any, cols: list[str], cond: str, qs: Sequence[float]) -> np.ndarray:
    """``quantile_cont`` (NumPy's linear percentile) of each column at ``qs``: shape ``(len(qs), len(cols))``.
    One column per query: DuckDB holds a quantile's values in memory (8 bytes a row), it cannot spill them."""
    out = np.full((len(qs), len(cols)), np.nan)
    for j, c in enumerate(cols):
        got = con.execute(f"SELECT quantile_cont({c}::DOUBLE, {list(qs)!r}) FROM pre_part WHERE {cond}").fetchall()[0][0]
        if got is not None:
            out[:, j] = [np.nan if v is None else v for v in got]
    return out


def _rows(con: Any, cond: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM pre_part WHERE {cond}").fetchall()[0][0])


def _mode(con: Any, cols: list[str], cond: str) -> np.ndarray:
    """The most frequent non-missing value of each column, the smallest of ties (scikit-learn's rule)."""
    out = []
    for c in cols:
        got = con.execute(f"SELECT {c}::DOUBLE AS v FROM pre_part WHERE {cond} AND {c} IS NOT NULL AND NOT isnan({c}::DOUBLE) "
                          "GROUP BY v ORDER BY count(*) DESC, v LIMIT 1").fetchall()
        out.append(got[0][0] if got else np.nan)
    return np.array(out, dtype=np.float64)


def _nonzero(scale: np.ndarray) -> np.ndarray:
    """scikit-learn's ``_handle_zeros_in_scale``: a scale of (nearly) zero is 1."""
    scale = scale.copy()
    scale[scale < 10 * np.finfo(scale.dtype).eps] = 1.0
    return scale


def _like(value: np.ndarray, seen: Any) -> np.ndarray:
    """``value`` in the dtype scikit-learn stored the statistic in (float32 data keeps float32 minima)."""
    dtype = np.asarray(seen).dtype if seen is not None and np.asarray(seen).dtype.kind == "f" else np.float64
    return value.astype(dtype)


def _scaler(con: Any, t: Any, cols: list[str], cond: str) -> dict[str, Any]:
    """StandardScaler: counts of non-missing values, means, population variances, scales."""
    counts = _aggregate(con, cols, cond, "count({c})")
    out: dict[str, Any] = {"n_samples_seen_": counts[0] if np.ptp(counts) == 0 else counts}
    if t.with_mean or t.with_std:
        out["mean_"] = _aggregate(con, cols, cond, "avg({c})")
    if t.with_std:
        var = _aggregate(con, cols, cond, "var_pop({c})")
        n, eps = counts, np.finfo(np.float64).eps
        constant = var <= n * eps * var + (n * out["mean_"] * eps) ** 2  # scikit-learn's _is_constant_feature
        out["var_"], out["scale_"] = var, np.where(constant, 1.0, _nonzero(np.sqrt(var)))
    return out


def _min_max(con: Any, t: Any, cols: list[str], cond: str) -> dict[str, Any]:
    """MinMaxScaler (minima and maxima in the dtype it stored them) and MaxAbsScaler."""
    n = _rows(con, cond)
    if type(t).__name__ == "MaxAbsScaler":
        top = _like(_aggregate(con, cols, cond, "max(abs({c}))"), getattr(t, "max_abs_", None))
        return {"n_samples_seen_": n, "max_abs_": top, "scale_": _nonzero(top)}
    lo = _like(_aggregate(con, cols, cond, "min({c})"), t.data_min_)
    hi = _like(_aggregate(con, cols, cond, "max({c})"), t.data_max_)
    a, b = t.feature_range
    data_range = hi - lo
    scale = (b - a) / _nonzero(data_range)
    return {"n_samples_seen_": n, "data_min_": lo, "data_max_": hi, "data_range_": data_range,
            "scale_": scale, "min_": a - lo * scale}


def _robust(con: Any, t: Any, cols: list[str], cond: str) -> dict[str, Any]:
    """RobustScaler: medians and the quantile range (``unit_variance`` divides by the normal's)."""
    out = {}
    q_lo, q_hi = t.quantile_range
    lo, median, hi = _quantiles(con, cols, cond, [q_lo / 100, 0.5, q_hi / 100])
    if t.with_centering:
        out["center_"] = median
    if t.with_scaling:
        scale = _nonzero(hi - lo)
        if t.unit_variance:
            from scipy.stats import norm

            scale = scale / (norm.ppf(q_hi / 100.0) - norm.ppf(q_lo / 100.0))
        out["scale_"] = scale
    return out


def _imputer(con: Any, t: Any, cols: list[str], cond: str) -> dict[str, Any]:
    """SimpleImputer: the mean, median or most frequent value (a constant does not depend on the rows)."""
    if t.strategy == "constant":
        return {}
    if t.strategy == "median":
        stats = _quantiles(con, cols, cond, [0.5])[0]
    else:
        stats = _mode(con, cols, cond) if t.strategy == "most_frequent" else _aggregate(con, cols, cond, "avg({c})")
    return {"statistics_": _like(stats, t.statistics_)}


_EXPECTED = {"StandardScaler": _scaler, "MinMaxScaler": _min_max, "MaxAbsScaler": _min_max, "RobustScaler": _robust,
             "SimpleImputer": _imputer}


def _expected(con: Any, t: Any, cols: list[str], cond: str) -> dict[str, Any]:
    """The learned attributes a fit of ``t`` on the rows where ``cond`` would have."""
    return _EXPECTED[type(t).__name__](con, t, cols, cond)
