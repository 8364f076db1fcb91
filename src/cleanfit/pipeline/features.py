"""The columns of a tabular run: the checks on what the config names, the target's encoding, the
feature frame (numbers as float, text as categories, text that is not a feature refused), and the
fit-on-train preprocessing. Each mistake is a :class:`~cleanfit.errors.DataError` that names the file,
the column and the fix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cleanfit._util.columns import did_you_mean
from cleanfit.data.tables import TextColumn, infer_task, text_column_problem
from cleanfit.errors import DataError
from cleanfit.pipeline.config import Config, PreprocessConfig

_log = logging.getLogger("cleanfit")


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
            raise holes_error(holes)
    features = model_values(features, numeric, text)
    for column in numeric:
        if np.isinf(features[column].to_numpy()).any():
            raise infinite_error(column)
    return features


def model_values(features: pd.DataFrame, numeric: Sequence[str], text: Sequence[str]) -> pd.DataFrame:
    """The feature columns as the preprocessing reads them: numbers as float64 (missing: NaN), text by
    :func:`text_values`; a per-row step, applied to a whole table or to one row group of it.

    >>> model_values(pd.DataFrame({"a": [1, 2], "t": ["x", None]}), ["a"], ["t"]).to_dict("list")
    {'a': [1.0, 2.0], 't': ['x', 'missing']}
    """
    numbers, words = set(numeric), set(text)
    columns = {c: features[c].to_numpy(dtype=np.float64, na_value=np.nan) if c in numbers else text_values(features[c])
               for c in features.columns if c in numbers or c in words}
    return pd.DataFrame(columns, index=features.index)


def holes_error(columns: Sequence[str]) -> DataError:
    """Numeric columns with missing values while ``preprocess.impute = "none"``."""
    return DataError(
        f"columns {_short(columns)} have missing values and preprocess.impute = \"none\"; set "
        f"preprocess.impute = \"median\" or fill them in the file"
    )


def infinite_error(column: str) -> DataError:
    """A numeric column holding an infinite value."""
    return DataError(f"column {column!r} holds infinite values; replace them or list the column in data.drop")


def refuse_text_columns(text: pd.DataFrame, where: str) -> None:
    """Stop before encoding text columns that are not features (dates stored as text, identifier-like
    text, more than ~100 levels: the rule of :func:`cleanfit.data.tables.text_column_problem`), naming
    every one, its count of distinct values, and the fix."""
    refuse_text_problems([p for p in (text_column_problem(text[c], c) for c in text.columns) if p is not None], where)


def refuse_text_problems(problems: Sequence[TextColumn], where: str) -> None:
    """:func:`refuse_text_columns` for problems already found (:func:`cleanfit.data.tables.text_problem_of_counts`
    out of core)."""
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
    if values.empty:  # the schema of a table over audit.memory: its types are checked from the file
        return
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


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _short(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in list(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
