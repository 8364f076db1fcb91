"""Reading and checking a table for :mod:`cleanfit.pipeline.run`: columns, the target, the task, preprocessing.

Everything a user can get wrong about their table is caught here, before a split or a model exists,
and raised as a :class:`~cleanfit.errors.DataError` that names the file, the column and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cleanfit._util.columns import did_you_mean
from cleanfit.data.tables import infer_task
from cleanfit.errors import DataError
from cleanfit.pipeline.config import Config, PreprocessConfig

__all__ = ["Target", "infer_task", "check_column", "check_columns", "encode_target", "feature_frame",
           "column_kinds", "build_preprocessor"]


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
            f"data.target = {name!r}: {missing} of {len(y)} rows have no target value; "
            f"drop those rows from the file (a model cannot learn from or be scored on them)"
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
        features[column] = features[column].map(lambda v: "missing" if pd.isna(v) else str(v)).astype(object)
    return features


def column_kinds(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Split column names into numeric (numbers, booleans) and text/categorical ones."""
    numeric = [
        c for c in features.columns
        if pd.api.types.is_numeric_dtype(features[c]) and not pd.api.types.is_complex_dtype(features[c])
    ]
    return numeric, [c for c in features.columns if c not in numeric]


def build_preprocessor(numeric: Sequence[str], text: Sequence[str], settings: PreprocessConfig) -> Any:
    """A scikit-learn ColumnTransformer: numeric impute + scale, categorical encoding (dense output)."""
    from sklearn.compose import ColumnTransformer
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
