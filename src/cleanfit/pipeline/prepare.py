"""Steps 1-4 of a tabular run (:func:`prepare`): read and check the table, split, audit, preprocess on train.

Everything a user can get wrong about their table is caught here, before a split or a model exists,
and raised as a :class:`~cleanfit.errors.DataError` that names the file, the column and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import logging

import numpy as np
import pandas as pd

from cleanfit.auditing import CHECKS, AuditReport, audit
from cleanfit.auditing.ooc_scan import ParquetTable, is_parquet_path, memory_budget, open_table
from cleanfit.auditing.outofcore import audit_out_of_core
from cleanfit.data.rowsplit import RowSplit, part_fingerprint, split_rows
from cleanfit.data.splits import split
from cleanfit.data.tables import infer_task, parse_time, read_table
from cleanfit.errors import DataError
from cleanfit.pipeline.config import Config
from cleanfit.pipeline.features import (  # noqa: F401 - also the names callers import from here
    Target,
    build_preprocessor,
    check_columns,
    column_kinds,
    drop_missing_target,
    encode_target,
    feature_frame,
    text_values,
)
from cleanfit.pipeline.large import (
    LOADING, LargeData, PartSplit, check_values, duckdb_over, example_rows, file_fingerprint,
    fit_preprocessing, open_large, read_split_columns,
)
from cleanfit.pipeline.saved import Preprocessing
from cleanfit.tracking.environment import data_fingerprint

__all__ = ["AuditGateError", "PreparedData", "prepare", "split_method", "infer_task", "text_values"]

_log = logging.getLogger("cleanfit")

MIN_TRAIN_ROWS = 10  # fewer cannot be trained on, cross-validated by the audit, or trusted


class AuditGateError(DataError):
    """The leakage audit found what ``audit.fail_on`` forbids; training did not start.

    ``report`` holds the :class:`~cleanfit.AuditReport`. The command line exits with code 1.
    """

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class PreparedData:
    """A table after steps 1-4: split, audited, preprocessed on train only, ready for training."""

    config: Config
    task: str
    frame: pd.DataFrame
    features: pd.DataFrame
    splits: Any
    audit: Any
    preprocessor: Any
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]  # part -> (X float32, y)
    classes: list[Any] | None
    target_scale: tuple[float, float]  # regression: (mean, std) of the train targets; else (0, 1)
    data_fingerprint: str
    large: LargeData | None = None  # a table over audit.memory: read block by block, never whole (pipeline/large.py)

    @property
    def n_features(self) -> int:
        if self.large is not None:
            return self.large.preprocessing.n_outputs
        return int(self.arrays["train"][0].shape[1])

    @property
    def loading(self) -> str:
        """``"out-of-core"`` for a table over ``audit.memory`` (trained block by block), else ``"in-memory"``."""
        return LOADING if self.large is not None else "in-memory"

    @property
    def n_rows(self) -> int:
        return self.large.n_rows if self.large is not None else len(self.frame)

    def rows(self, part: str) -> int:
        """How many rows ``part`` (train, val, test) has."""
        return self.large.rows(part) if self.large is not None else len(self.arrays[part][1])

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.classes is not None else 1


def split_method(config: Config, task: str, splits: Any = None) -> str:
    """The ``split.by`` in effect: ``"auto"`` is time, else group, else stratify (classification) or random;
    ``"row-<by>"`` when ``splits`` is the row-number split of a table over ``audit.memory``."""
    made_by = str(getattr(splits, "by", ""))
    if made_by.startswith("row-"):
        return made_by
    if config.split.by != "auto":
        return config.split.by
    if config.data.time is not None:
        return "time"
    if config.data.group is not None:
        return "group"
    return "stratify" if task == "classification" else "random"


def prepare(config: Config, *, run_audit: bool = True) -> PreparedData:
    """Steps 1-4: read, split, audit (and enforce the gate), fit-on-train preprocessing.

    Raises :class:`~cleanfit.errors.DataError` for a table that cannot be used, and
    :class:`AuditGateError` when the audit finds what ``audit.fail_on`` forbids. A Parquet table larger than
    ``audit.memory`` is never read whole: see :func:`_prepare_large`.
    """
    large = _over_budget(config)
    if large is not None:
        return _prepare_large(config, large, run_audit=run_audit)
    frame = read_table(config.data.path, field="data.path")
    check_columns(frame, config)
    frame, dropped = drop_missing_target(frame, config)
    target = encode_target(frame, config)
    features = feature_frame(frame, config)
    if dropped:  # said once the table is known to be usable, so a refusal stays one line
        _log.warning("data.missing_target = \"drop\": dropped %d of %d rows of %s that have no %r value",
                     dropped, len(frame) + dropped, Path(config.data.path).name, config.data.target)
    time_column = None if config.data.time is None else frame[config.data.time]
    time = None if time_column is None else parse_time(time_column, f"data.time = {config.data.time!r}")[0]
    groups = None if config.data.group is None else frame[config.data.group].to_numpy()
    splits = _split(config, frame, target, time, groups)
    # the audit reads the time column by the same rule (parse_time), and keeps its time zone to print it
    report = audit(features, frame[config.data.target], splits, time=time_column, groups=groups) if run_audit else None
    _audit_gate(config, report)
    numeric, text = column_kinds(features)
    preprocessor = build_preprocessor(numeric, text, config.preprocess)
    parts = splits.fit_transform(preprocessor, features)
    if report is not None:  # prove the preprocessing saw the train rows only
        proof = audit(features, frame[config.data.target], splits, transformers=[preprocessor], checks=["preprocessing"])
        report = _merge_reports(report, proof)
    return PreparedData(
        config=config,
        task=target.task,
        frame=frame,
        features=features,
        splits=splits,
        audit=report,
        preprocessor=preprocessor,
        arrays={name: (np.ascontiguousarray(X, dtype=np.float32), target.values[rows])
                for name, X, rows in zip(("train", "val", "test"), parts, (splits.train, splits.val, splits.test))},
        classes=target.classes,
        target_scale=_target_scale(target, splits),
        data_fingerprint=data_fingerprint(frame),
    )


def _over_budget(config: Config) -> ParquetTable | None:
    """The Parquet table of ``data.path`` when it is larger than ``audit.memory`` (else None)."""
    if not is_parquet_path(config.data.path):
        return None
    table = open_table(config.data.path, [config.data.target])
    return table if table.nbytes > memory_budget(config.audit.memory, "audit.memory") else None


def _row_spec(config: Config, task: str) -> RowSplit:
    """The row split of ``config.split`` (``split.gap`` only with a time split: :func:`cleanfit.split`'s rule)."""
    return RowSplit(split_method(config, task), test=config.split.test, val=config.split.val, seed=config.split.seed,
                    gap=config.split.gap)


def _prepare_large(config: Config, table: ParquetTable, *, run_audit: bool) -> PreparedData:
    """Steps 1-4 for a Parquet table larger than ``audit.memory`` (:mod:`cleanfit.pipeline.large`): the schema
    checked, the row split made from the target/time/group columns alone and audited out of core, the values
    checked and the preprocessing fit on the train rows by DuckDB; the rows are read when training reads them."""
    memory = memory_budget(config.audit.memory, "audit.memory")
    large = open_large(config, table)
    columns = read_split_columns(config, table)
    if config.data.missing_target == "drop" and _has_missing(columns.column(config.data.target)):
        raise DataError(f"data.missing_target = \"drop\": {table.name} is larger than audit.memory and rows are not "
                        "dropped out of core; drop the rows without a target from the file, or raise audit.memory")
    target = encode_large_target(columns.column(config.data.target), config)
    time = None if config.data.time is None else parse_time(columns.column(config.data.time).to_pandas(),
                                                            f"data.time = {config.data.time!r}")[0]
    groups = None if config.data.group is None else columns.column(config.data.group).to_pandas().to_numpy()
    n = columns.num_rows
    part, spec = row_parts(config, n, target, time, groups)
    del columns, time, groups
    splits = PartSplit(part, f"row-{spec.by}", part_fingerprint(part))  # 1 byte a row, no index arrays
    _check_split(config, len(part), splits)
    target_scale = _target_scale(target, splits)
    task, classes = target.task, target.classes
    del target
    columns = list(large.features.columns)
    with duckdb_over(table, columns, large.numeric, memory) as con:  # bad values stop the run before the audit
        check_values(con, large, config)
    report: Any = None
    if run_audit:  # the same row split, audited out of core (exact checks on every row; its own DuckDB)
        report = audit_out_of_core(table, config.data.target, spec, time=config.data.time, groups=config.data.group,
                                   requested=tuple(CHECKS), seed=0, memory=memory, drop=config.data.drop)
        _audit_gate(config, report)
    with duckdb_over(table, columns, large.numeric, memory) as con:
        preprocessing = Preprocessing(fit_preprocessing(con, large, config.preprocess, part))
    data = LargeData(large, part, preprocessing, config.data.target, classes, target_scale, example_rows(large))
    return PreparedData(config=config, task=task, frame=large.frame, features=large.features, splits=splits,
                        audit=report, preprocessor=preprocessing, arrays={}, classes=classes,
                        target_scale=target_scale, data_fingerprint=file_fingerprint(table), large=data)


def encode_large_target(column: Any, config: Config) -> Target:
    """:func:`~cleanfit.pipeline.features.encode_target` of a target column (pyarrow) of every row.

    Integers, booleans or text with no missing value are encoded from their distinct values (the rule sees the
    same values, so the same task, classes and errors) and each row's class code is looked up by Arrow, in the
    smallest integer type: a few bytes a row instead of the pandas column, ``np.unique``'s sort and int64
    codes. Anything else (floats, missing values, a regression) goes through ``encode_target`` on every row
    (class codes then made small too).

    >>> import pyarrow as pa
    >>> from cleanfit.pipeline.config import load_config
    >>> encode_large_target(pa.chunked_array([["no", "yes", "no"]]), load_config({"data": {"path": "t.parquet", "target": "y"}}))
    Target(values=array([0, 1, 0], dtype=int8), task='classification', classes=['no', 'yes'])
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.types as pat

    name = config.data.target
    kind = column.type
    if len(column) and not column.null_count and (pat.is_integer(kind) or pat.is_boolean(kind) or pat.is_string(kind)
                                                  or pat.is_large_string(kind)):
        distinct = pc.unique(column)
        target = encode_target(pd.DataFrame({name: distinct.to_pandas()}), config)
        if target.task == "classification":
            assert target.classes is not None
            ordered = distinct.take(pa.array(np.argsort(target.values, kind="stable")))  # the classes, in code order
            codes = np.empty(len(column), dtype=np.min_scalar_type(-len(target.classes)))
            start = 0
            for chunk in column.chunks:
                codes[start:start + len(chunk)] = pc.index_in(chunk, value_set=ordered).to_numpy()
                start += len(chunk)
            return Target(codes, "classification", target.classes)
    target = encode_target(pd.DataFrame({name: column.to_pandas()}), config)
    if target.classes is None:
        return target
    return Target(target.values.astype(np.min_scalar_type(-len(target.classes))), target.task, target.classes)


def _has_missing(column: Any) -> bool:
    """A missing target as pandas sees one: a null, or a float NaN."""
    import pyarrow.compute as pc
    import pyarrow.types as pat

    return bool(column.null_count) or (pat.is_floating(column.type) and bool(pc.any(pc.is_nan(column)).as_py()))


def row_parts(config: Config, n: int, target: Target, time: np.ndarray | None,
              groups: np.ndarray | None) -> tuple[np.ndarray, RowSplit]:
    """The int8 part of each row under the row-number split (:mod:`cleanfit.data.rowsplit`) that the
    out-of-core audit computes for the same table, and its spec."""
    spec = _row_spec(config, target.task)
    times = None if time is None else (time.view(np.int64) if time.dtype.kind in "Mm" else time)
    return split_rows(spec, n, y=target.values, groups=groups, time=times), spec


def _split(config: Config, frame: pd.DataFrame, target: Target, time: np.ndarray | None,
           groups: np.ndarray | None) -> Any:
    """Step 2: the rows split by ``split_method``, refused when too few are left to train or test on."""
    method = split_method(config, target.task)
    splits = split(
        len(frame),
        test=config.split.test,
        val=config.split.val,
        by=method,
        y=target.values if method == "stratify" else None,
        groups=groups,
        time=time,
        gap=config.split.gap,
        seed=config.split.seed,
    )
    _check_split(config, len(frame), splits)
    return splits


def _check_split(config: Config, n: int, splits: Any) -> None:
    if len(splits.train) < MIN_TRAIN_ROWS or len(splits.test) == 0:
        raise DataError(
            f"{Path(config.data.path).name}: {n} rows leave {len(splits.train)} to train on and "
            f"{len(splits.test)} to test on; a run needs at least {MIN_TRAIN_ROWS} train rows and one test row: "
            f"add rows or change split.test/split.val"
        )
    if config.train.early_stopping and len(splits.val) == 0:
        raise DataError("train.early_stopping needs validation rows but the split has none; raise split.val")


def _audit_gate(config: Config, report: Any) -> None:
    """Step 3's gate: stop when the audit found what ``audit.fail_on`` forbids."""
    if report is None or not report.failed(config.audit.fail_on):
        return
    worst = [f for f in report.findings if f.severity == "critical"] or report.findings
    raise AuditGateError(
        f"the leakage audit of {Path(config.data.path).name} failed ({_counts(report)}): "
        f"{worst[0].check}: {worst[0].message} Fix the data, or set audit.fail_on = \"never\" to train anyway",
        report,
    )


def _target_scale(target: Target, splits: Any) -> tuple[float, float]:
    """Regression: the (mean, std) of the train targets, which the model learns to predict standardised."""
    if target.task != "regression":
        return 0.0, 1.0
    train_y = target.values[splits.train]
    return float(train_y.mean()), float(train_y.std()) or 1.0




def _merge_reports(first: Any, second: Any) -> Any:
    return AuditReport(
        [*first.findings, *second.findings],
        checks=[*first.checks, *(c for c in second.checks if c not in first.checks)],
        skipped={k: v for k, v in {**first.skipped, **second.skipped}.items() if k not in second.checks},
        n_rows=first.n_rows,
        n_features=first.n_features,
        seconds=first.seconds + second.seconds,
        task=first.task,
        split=first.split,
        sample=first.sample,
    )


def _counts(report: Any) -> str:
    counts: dict[str, int] = {}
    for finding in report.findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    return ", ".join(f"{n} {severity}" for severity, n in counts.items()) or "no findings"
