"""``audit()``: check the data and the split for leakage, one family of checks per module."""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from cleanfit.auditing.inputs import TEST, VAL, AuditData, prepare
from cleanfit.auditing.ooc_scan import Progress, is_parquet_path
from cleanfit.auditing.outofcore import SAMPLE, audit_path
from cleanfit.auditing.distribution import check_label_order, check_split_shift
from cleanfit.auditing.duplicates import check_duplicates, check_near_duplicates
from cleanfit.auditing.groups import check_group
from cleanfit.auditing.impact import measure_impact
from cleanfit.auditing.preprocessing import check_preprocessing
from cleanfit.auditing.report import AuditReport
from cleanfit.auditing.target import check_identifier, check_target_leakage
from cleanfit.auditing.temporal import check_temporal
from cleanfit.auditing.text import check_text_columns
from cleanfit.errors import DataError
from cleanfit.findings import Finding

Check = Callable[[AuditData], list[Finding]]


def _needs(data: AuditData, *what: str) -> str | None:
    """The reason a check cannot run (``"needs splits"``), or None."""
    missing = [w for w in what if getattr(data, {"splits": "part"}.get(w, w)) is None]
    return f"needs {' and '.join(missing)}" if missing else None


# check id -> (function, why it cannot run on these inputs or None); the order is the report's order
CHECKS: dict[str, tuple[Check, Callable[[AuditData], str | None]]] = {
    "duplicates": (check_duplicates, lambda d: _needs(d, "splits")),
    "near-duplicates": (check_near_duplicates, lambda d: _needs(d, "splits")),
    "target-leakage": (check_target_leakage, lambda d: _needs(d, "y")),
    "identifier": (check_identifier, lambda d: None),
    "temporal": (check_temporal, lambda d: _needs(d, "time", "splits")),
    "group": (check_group, lambda d: None),
    "preprocessing": (check_preprocessing, lambda d: "no transformers given" if not d.transformers else _needs(d, "splits")),
    "label-order": (check_label_order, lambda d: None if d.y is not None or d.time is not None else "needs y or time"),
    "split-shift": (check_split_shift, lambda d: _needs(d, "splits")),
    "text-columns": (check_text_columns, lambda d: None),
}


def _something_to_check(data: AuditData) -> None:
    """A DataError for inputs on which the audit would pass with nothing checked.

    No feature, time or group columns, a split with no held-out rows, or an infinite target: each would let the gate say
    "PASSED" without having looked at anything (see ``cleanfit audit``'s own wording of the same rules).
    """
    if not data.features and data.time is None and data.groups is None:  # a time or group column alone is checked
        raise DataError("audit(X=...) has no feature columns once y is taken out (and no time or groups): there is "
                        "nothing to check for leakage; pass X with the feature columns")
    if data.part is not None and not np.isin(data.part, (VAL, TEST)).any():
        raise DataError("audit(splits=...): splits.val and splits.test are empty, so there are no held-out rows "
                        "to compare with train; hold out rows (cf.split(X, test=0.2)) or audit without splits")
    if data.y is not None and data.y.dtype.kind == "f" and np.isinf(data.y).any():
        rows = np.flatnonzero(np.isinf(data.y))
        raise DataError(f"audit(y=...) holds {rows.size} infinite value(s) (rows {_rows(rows)}): no model can "
                        "score them; drop those rows or replace the values before auditing")


def _rows(rows: np.ndarray, shown: int = 5) -> str:
    """``"3, 17"`` or ``"3, 17, 20, 41, 56, ..."``: the first few row numbers of a problem."""
    return ", ".join(map(str, rows[:shown].tolist())) + (", ..." if rows.size > shown else "")


def _requested(checks: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(checks, str):
        checks = list(CHECKS) if checks == "all" else [checks]
    if not isinstance(checks, Iterable) or not all(isinstance(c, str) for c in checks):
        raise DataError(f"audit(checks={checks!r}): pass 'all' or a list of check ids, e.g. "
                        f"checks=['duplicates', 'target-leakage'] (the checks are {', '.join(CHECKS)})")
    chosen = list(checks)
    unknown = [c for c in chosen if c not in CHECKS]
    if unknown:
        raise DataError(
            f"audit(checks=...): unknown check {', '.join(map(repr, unknown))}; the checks are "
            f"{', '.join(CHECKS)} (or 'all')"
        )
    if not chosen:
        raise DataError(f"audit(checks=[]) runs nothing: pass 'all' or some of {', '.join(CHECKS)}")
    return tuple(c for c in CHECKS if c in chosen)


def audit(
    X: Any,
    y: Any = None,
    splits: Any = None,
    *,
    time: Any = None,
    groups: Any = None,
    transformers: Sequence[Any] = (),
    checks: str | Iterable[str] = "all",
    impact: bool = False,
    seed: int = 0,
    memory: Any = "auto",
    sample: int = SAMPLE,
    progress: Progress | None = None,
) -> AuditReport:
    """Audit data and a split for the ways a model fools you; returns an :class:`AuditReport`.

    ``X`` is a DataFrame (findings name its columns) or a 2-D array (columns ``x0, x1, ...``);
    ``y`` the target (an array, or a column name of X); ``splits`` any object with ``.train``,
    ``.val`` and ``.test`` row index arrays (a :class:`cleanfit.Splits`); ``time`` and ``groups`` a
    column name or one value per row; ``transformers`` fitted scikit-learn transformers to verify;
    ``checks`` ``"all"`` or a list of check ids. Checks that need something not given (a split, a
    label, a time column) are listed in ``report.skipped``. ``impact=True`` measures what each critical
    or warning finding is worth (``finding.details["impact"]``: the test score of a quick model with and
    without the flagged columns, or on test rows with and without a copy in train, and a 95% bootstrap
    interval of the difference). ``seed`` fixes the row samples.

    ``X`` may also be the path of a Parquet table (a file, a folder of files, a glob), with ``y``, ``time`` and
    ``groups`` column names and ``splits`` None or a :class:`~cleanfit.data.rowsplit.RowSplit`: the table is split
    by row number, and audited out of core (DuckDB) when it is larger than ``memory`` (``"auto"``: half the
    available memory; ``"2GB"``; bytes), the model-based checks on ``sample`` rows; ``progress(done, total,
    seconds)`` hears about the pass (see :mod:`cleanfit.auditing.outofcore`). Out of core, ``transformers`` are
    checked against statistics DuckDB computes, and ``impact`` is measured on the row sample (the findings say so).

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
    >>> class Parts:  # any object with train/val/test index arrays
    ...     train, val, test = np.arange(0, 160), np.arange(0), np.arange(160, 200)
    >>> leaky = np.vstack([X[:160], X[:40]])  # the "test" rows copy train rows
    >>> report = audit(leaky, y, Parts(), checks=["duplicates"])
    >>> report.passed, report.findings[0].severity, report.findings[0].details["overlaps"][0]["observed_rows"]
    (False, 'critical', 40)
    """
    started = _time.perf_counter()
    requested = _requested(checks)
    if is_parquet_path(X):
        return audit_path(X, y, splits, time=time, groups=groups, requested=requested, seed=seed, memory=memory,
                          sample=sample, progress=progress, in_memory=audit, transformers=transformers, impact=impact)
    data = prepare(X, y, splits, time=time, groups=groups, transformers=transformers, seed=seed, requested=requested)
    _something_to_check(data)
    data.cache["impact"] = bool(impact)
    findings: list[Finding] = []
    ran, skipped = [], {}
    for name in requested:
        run, blocker = CHECKS[name]
        reason = blocker(data)
        if reason:
            skipped[name] = reason
            continue
        findings += run(data)
        ran.append(name)
    if impact:
        measure_impact(data, findings)
    return AuditReport(findings, checks=ran, skipped=skipped, n_rows=data.n, n_features=len(data.features),
                       seconds=_time.perf_counter() - started, task=data.task, split=data.split)
