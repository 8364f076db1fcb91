"""Steps 1-4 of a tabular run (:func:`prepare`): read and check the table, split, audit, preprocess on train.

Everything a user can get wrong about their table is caught here, before a split or a model exists,
and raised as a :class:`~cleanfit.errors.DataError` that names the file, the column and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import json
import logging

import numpy as np
import pandas as pd

from cleanfit.auditing import CHECKS, AuditReport, audit
from cleanfit.auditing.ooc_scan import ParquetTable, is_parquet_path, memory_budget, open_table
from cleanfit.auditing.outofcore import audit_out_of_core, splits_of
from cleanfit.data.rowsplit import RowSplit, split_rows
from cleanfit.data.splits import split
from cleanfit._util.columns import did_you_mean
from cleanfit.data.tables import infer_task, parse_time, read_table, text_column_problem
from cleanfit.errors import DataError
from cleanfit.pipeline.config import Config, PreprocessConfig
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

    @property
    def n_features(self) -> int:
        return int(self.arrays["train"][0].shape[1])

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
    :class:`AuditGateError` when the audit finds what ``audit.fail_on`` forbids.
    """
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
    large = _over_budget(config)
    splits = _split(config, frame, target, time, groups, by_row=large is not None)
    if run_audit and large is not None:  # the same row split, audited out of core (exact checks on every row)
        report: Any = audit_out_of_core(large, config.data.target, _row_spec(config, target.task), time=config.data.time,
                                        groups=config.data.group, requested=tuple(CHECKS), seed=0,
                                        memory=memory_budget(config.audit.memory, "audit.memory"), drop=config.data.drop)
    else:  # the audit reads the time column by the same rule (parse_time), and keeps its time zone to print it
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
    if config.split.gap:
        raise DataError(f"split.gap = {config.split.gap}: {Path(config.data.path).name} is larger than audit.memory and is "
                        "split by row number, which has no gaps; set split.gap = 0 or raise audit.memory")
    return RowSplit(split_method(config, task), test=config.split.test, val=config.split.val, seed=config.split.seed)


def _by_row(config: Config, frame: pd.DataFrame, target: Target, time: np.ndarray | None, groups: np.ndarray | None) -> Any:
    """The row-number split (:mod:`cleanfit.data.rowsplit`) the out-of-core audit computes for the same table."""
    spec = _row_spec(config, target.task)
    times = None if time is None else (time.view(np.int64) if time.dtype.kind in "Mm" else time)
    return splits_of(split_rows(spec, len(frame), y=target.values, groups=groups, time=times), spec)


def _split(config: Config, frame: pd.DataFrame, target: Target, time: np.ndarray | None,
           groups: np.ndarray | None, *, by_row: bool = False) -> Any:
    """Step 2: the rows split by ``split_method`` (by row number for a table over ``audit.memory``), refused
    when too few are left to train or test on."""
    method = split_method(config, target.task)
    splits = _by_row(config, frame, target, time, groups) if by_row else split(
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
    if len(splits.train) < MIN_TRAIN_ROWS or len(splits.test) == 0:
        raise DataError(
            f"{Path(config.data.path).name}: {len(frame)} rows leave {len(splits.train)} to train on and "
            f"{len(splits.test)} to test on; a run needs at least {MIN_TRAIN_ROWS} train rows and one test row: "
            f"add rows or change split.test/split.val"
        )
    if config.train.early_stopping and len(splits.val) == 0:
        raise DataError("train.early_stopping needs validation rows but the split has none; raise split.val")
    return splits


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




def check_column(frame: pd.DataFrame, name: str, field: str, where: str) -> None:
    """Raise a DataError naming ``field`` when ``name`` is not a column, with the closest names."""
    if name in frame.columns:
        return
    columns = list(frame.columns)
    hint = did_you_mean(name, columns) or f"the columns are {_short(columns)}"
    raise DataError(f"{field} = {name!r}: no such column in {where}; {hint}")


def check_columns(frame: pd.DataFrame, config: Config) -> None:
    """Every column the config names exists, and no column plays two roles."""
    where = Path(config.data.path).name
    data = config.data
    check_column(frame, data.target, "data.target", where)
    for field, name in (("data.time", data.time), ("data.group", data.group)):
        if name is not None:
            check_column(frame, name, field, where)
            if name == data.target:
                raise DataError(f"{field} = {name!r} is also data.target; the target cannot be the {field[5:]} column")
    for name in data.drop:
        check_column(frame, name, "data.drop", where)
        if name == data.target:
            raise DataError(f"data.drop lists the target {name!r}; remove it from data.drop")


def drop_missing_target(frame: pd.DataFrame, config: Config) -> tuple[pd.DataFrame, int]:
    """``data.missing_target = "drop"``: the rows without a target value dropped, and how many; with the
    default ``"error"`` the frame as it is (:func:`encode_target` refuses it, naming this setting)."""
    missing = frame[config.data.target].isna()
    if config.data.missing_target != "drop" or not missing.any():
        return frame, 0
    kept = frame.loc[~missing.to_numpy()].reset_index(drop=True)
    if len(kept) == 0:
        raise DataError(f"data.target = {config.data.target!r}: every row has no target value; pick the label column")
    return kept, int(missing.sum())


@dataclass(frozen=True)
class Target:
    """The target column, encoded: class codes (int64) or float values, and what they mean."""

    values: np.ndarray
    task: str
    classes: list[Any] | None  # classification: the label of each code


def encode_target(frame: pd.DataFrame, config: Config) -> Target:
    """Check and encode the target column; the task comes from the config or the one task rule,
    :func:`cleanfit.data.tables.infer_task`."""
    name = config.data.target
    y = frame[name]
    missing = int(y.isna().sum())
    if missing:
        raise DataError(
            f"data.target = {name!r}: {missing} of {len(y)} rows have no target value (a model cannot learn "
            f"from or be scored on them); set data.missing_target = \"drop\" to drop them, or fill them in the file"
        )
    task = config.data.task if config.data.task != "auto" else infer_task(y)
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise DataError(
                f"data.target = {name!r} holds non-numeric values such as {y.iloc[0]!r}; "
                f"set data.task = \"classification\" or pick a numeric target"
            )
        values = y.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise DataError(f"data.target = {name!r} holds infinite values; remove those rows")
        if np.ptp(values) == 0:
            raise DataError(f"data.target = {name!r} has one value ({values[0]:g}) in every row: nothing to learn")
        return Target(values.astype(np.float32), task, None)
    labels = y.astype(str) if y.map(type).nunique() > 1 else y
    classes, codes = np.unique(labels.to_numpy(), return_inverse=True)
    if len(classes) < 2:
        raise DataError(
            f"data.target = {name!r} has one class ({_plain(classes[0])!r}) in every row; a classifier needs at least two"
        )
    return Target(codes.astype(np.int64), task, [_plain(c) for c in classes])


def feature_frame(frame: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The model's inputs: every column except the target, time, group and dropped columns.

    Text columns become strings (missing values the category ``"missing"``): a per-row step that
    learns nothing, so it can run before the split.
    """
    data = config.data
    exclude = {data.target, *data.drop, *(c for c in (data.time, data.group) if c is not None)}
    features = frame[[c for c in frame.columns if c not in exclude]].copy()
    if features.shape[1] == 0:
        raise DataError(
            f"no feature columns left in {Path(data.path).name} after removing the target, time, group "
            f"and data.drop columns; remove some names from data.drop"
        )
    numeric, text = column_kinds(features)
    for column in text:  # a cell holding a list cannot be counted, compared or encoded: say so first
        _check_one_value_per_cell(features[column], Path(data.path).name)
    if text and config.preprocess.categorical != "none":
        refuse_text_columns(features[text], Path(data.path).name)
    if text and config.preprocess.categorical == "none":
        raise DataError(
            f"columns {_short(text)} are not numeric and preprocess.categorical = \"none\"; set "
            f"preprocess.categorical = \"onehot\" or list them in data.drop"
        )
    if config.preprocess.impute == "none":
        holes = [c for c in numeric if features[c].isna().any()]
        if holes:
            raise DataError(
                f"columns {_short(holes)} have missing values and preprocess.impute = \"none\"; set "
                f"preprocess.impute = \"median\" or fill them in the file"
            )
    for column in numeric:
        values = features[column].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isinf(values).any():
            raise DataError(f"column {column!r} holds infinite values; replace them or list the column in data.drop")
        features[column] = values
    for column in text:
        features[column] = text_values(features[column])
    return features


def refuse_text_columns(text: pd.DataFrame, where: str) -> None:
    """Stop before encoding text columns that are not features (dates stored as text, identifier-like
    text, more than ~100 levels: the rule of :func:`cleanfit.data.tables.text_column_problem`), naming
    every one, its count of distinct values, and the fix."""
    problems = [p for p in (text_column_problem(text[c], c) for c in text.columns) if p is not None]
    if not problems:
        return
    what = {"date": "dates stored as text", "identifier": "a distinct value on most rows", "levels": "too many levels"}
    q = json.dumps  # TOML's quoting, so the fix can be pasted into the config
    listed = ", ".join(f"{q(p.column)} ({what[p.kind]}: {p.distinct:,} distinct values)" for p in problems)
    dates = [p.column for p in problems if p.kind == "date"]
    others = [p.column for p in problems if p.kind != "date"]
    fixes = [f"data.time = {q(dates[0])} (or list it in data.drop)"] if len(dates) == 1 else []
    drop = others + (dates if len(dates) != 1 else [])
    if drop:
        fixes.append("data.drop = [" + ", ".join(q(c) for c in drop) + "]")
    raise DataError(
        f"{where}: text columns that are not features would be one-hot encoded into many columns: "
        f"{listed}; set {' and '.join(fixes)}"
    )


def _check_one_value_per_cell(values: pd.Series, file: str) -> None:
    """A DataError for a column of lists, arrays or dicts (as Parquet can hold): a model takes one value a cell."""
    nested = values.map(lambda v: isinstance(v, (list, tuple, dict, set, np.ndarray)))
    if nested.any():
        row = int(np.flatnonzero(nested.to_numpy())[0])
        example = np.asarray(values.iloc[row]).tolist() if not isinstance(values.iloc[row], dict) else values.iloc[row]
        raise DataError(
            f"column {values.name!r} of {file} holds lists or other containers (row {row}: {str(example)[:60]}); "
            "a model takes one value per cell: expand it into columns in the file, or list it in data.drop"
        )


def text_values(column: pd.Series) -> pd.Series:
    """A text column as the model sees it: each value as ``str``, a missing one as the category ``"missing"``.

    >>> text_values(pd.Series(["a", None, 3])).tolist()
    ['a', 'missing', '3']
    """
    return column.map(lambda v: "missing" if pd.isna(v) else str(v)).astype(object)


def column_kinds(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Split column names into numeric (numbers, booleans) and text/categorical ones."""
    numeric = [
        c for c in features.columns
        if pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_complex_dtype(features[c])
    ]
    return numeric, [c for c in features.columns if c not in numeric]


def build_preprocessor(numeric: Sequence[str], text: Sequence[str], settings: PreprocessConfig) -> Any:
    """A scikit-learn ColumnTransformer: numeric impute + scale, categorical encoding (dense output)."""
    from sklearn.compose import ColumnTransformer  # scikit-learn is heavy (~1 s): imported when a run is prepared
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, RobustScaler, StandardScaler

    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[Any] = []
        if settings.impute != "none":
            steps.append(SimpleImputer(strategy=settings.impute, keep_empty_features=True))
        scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}.get(settings.scale)
        if scaler is not None:
            steps.append(scaler())
        parts.append(("numeric", make_pipeline(*steps) if steps else "passthrough", list(numeric)))
    if text:
        if settings.categorical == "onehot":
            encoder: Any = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        else:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        parts.append(("categorical", encoder, list(text)))
    return ColumnTransformer(parts, sparse_threshold=0.0)


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


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _short(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in list(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
