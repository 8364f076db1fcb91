"""The audit's inputs, checked once at the boundary and shared by every check.

:func:`prepare` turns what the user passed (a DataFrame or array, labels, a split, a time and a group
column) into one :class:`AuditData`; the checks trust it. Every user mistake becomes a
:class:`~cleanfit.errors.DataError` that names the argument or column and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cleanfit._util.args import check_seed
from cleanfit._util.columns import did_you_mean, shown
from cleanfit.data.splits import Splits
from cleanfit.data.tables import infer_task, parse_time
from cleanfit.errors import DataError

PART_NAMES = ("train", "val", "test")
TRAIN, VAL, TEST = 0, 1, 2
UNASSIGNED = -1


@dataclass
class AuditData:
    """Everything the checks read. ``part[i]`` is 0/1/2 for train/val/test, -1 for rows in no part."""

    X: pd.DataFrame
    features: list[str]
    y: np.ndarray | None = None
    task: str | None = None  # "classification" | "regression"
    part: np.ndarray | None = None
    splits: Any = None
    split: dict[str, str] | None = None  # {"method", "fingerprint"} of the split audited
    time: np.ndarray | None = None  # int64 or float64, sortable
    time_is_datetime: bool = False  # datetimes or durations, as int64 nanoseconds
    time_format: str = "number"  # "number" | "datetime" | "datetime-utc" (was time-zone aware) | "timedelta"
    time_name: str | None = None
    groups: np.ndarray | None = None  # int64 codes
    group_name: str | None = None
    transformers: tuple[Any, ...] = ()
    seed: int = 0
    requested: tuple[str, ...] = ()
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.X)

    def rows(self, p: int) -> np.ndarray:
        """The row positions of part ``p`` (sorted)."""
        assert self.part is not None
        return np.flatnonzero(self.part == p)

    def later_parts(self) -> list[int]:
        """The held-out parts that have rows (val, test)."""
        assert self.part is not None
        return [p for p in (VAL, TEST) if np.any(self.part == p)]

    def train_rows(self) -> np.ndarray:
        """Rows to learn from: the train part, or every row when there is no split."""
        return np.arange(self.n) if self.part is None else self.rows(TRAIN)


def close_matches(name: Any, options: list[Any]) -> str:
    """``"; did you mean 'x'? the columns are ..."`` for an unknown column name."""
    near = did_you_mean(name, options)
    return f"{'; ' + near if near else ';'} the columns are {shown(options, 12)}"


def prepare(
    X: Any,
    y: Any,
    splits: Any,
    *,
    time: Any,
    groups: Any,
    transformers: Any,
    seed: int,
    requested: tuple[str, ...],
) -> AuditData:
    seed = check_seed(seed, "audit")
    frame = _frame(X)
    n = len(frame)
    if n < 2:
        raise DataError(f"audit(X=...) has {n} rows: the audit needs at least 2")
    drop: list[Any] = []
    target, target_name = _column(y, "y", frame, n)
    if target_name is not None:
        drop.append(target_name)
    time_values, time_name = _column(time, "time", frame, n)
    if time_name is not None:
        drop.append(time_name)
    group_values, group_name = _column(groups, "groups", frame, n)
    if group_name is not None:
        drop.append(group_name)
    features = [c for c in frame.columns if c not in set(drop)]
    data = AuditData(X=frame, features=features, seed=int(seed), requested=requested)
    if target is not None:
        data.y, data.task = _target(target)
    if splits is not None:
        data.part = _parts(splits, n)
        data.splits = splits
        data.split = split_identity(splits)
    if time_values is not None:
        data.time, data.time_format = _time(time_values)
        data.time_is_datetime = data.time_format != "number"
        data.time_name = str(time_name) if time_name is not None else "time"
    if group_values is not None:
        codes, _ = pd.factorize(pd.Series(group_values), use_na_sentinel=True)
        data.groups = codes.astype(np.int64)
        data.group_name = str(group_name) if group_name is not None else "groups"
    data.transformers = _transformers(transformers)
    return data


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        if X.columns.has_duplicates:
            dup = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
            raise DataError(f"audit(X=...) has duplicate column names {dup}: rename them so findings can name columns")
        return _hashable_cells(X)
    if isinstance(X, pd.Series):
        return X.to_frame()
    try:
        arr = np.asarray(X)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is the user's input
        raise DataError(f"audit(X=...) got {type(X).__name__}, which is not a table: pass a DataFrame or 2-D array") from exc
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise DataError(f"audit(X=...) must be 2-D (rows x features), got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])], copy=False)


def _hashable_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with object columns whose cells cannot be hashed (lists, dicts) compared by their text."""
    unhashable = []
    for c in frame.columns[frame.dtypes == object]:
        try:
            pd.factorize(frame[c])
        except TypeError:
            unhashable.append(c)
    if not unhashable:
        return frame
    frame = frame.copy(deep=False)
    for c in unhashable:
        frame[c] = frame[c].astype(str).where(frame[c].notna())
    return frame


def _column(arg: Any, name: str, frame: pd.DataFrame, n: int) -> tuple[Any, Any]:
    """``(values, column name or None)`` for an argument that is a column name or an array."""
    if arg is None:
        return None, None
    if np.ndim(arg) == 0 and not hasattr(arg, "__array__"):
        if arg not in frame.columns:
            raise DataError(f"audit({name}={arg!r}): no such column in X{close_matches(arg, list(frame.columns))}")
        return frame[arg].to_numpy(), arg
    values = arg.to_numpy() if isinstance(arg, (pd.Series, pd.Index)) else np.asarray(arg)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise DataError(f"audit({name}=...) must be 1-D (one value per row), got shape {values.shape}")
    if len(values) != n:
        raise DataError(f"audit({name}=...) has {len(values)} values but X has {n} rows: give one value per row")
    return values, None


def _target(values: np.ndarray) -> tuple[np.ndarray, str]:
    series = pd.Series(values)
    missing = int(series.isna().sum())
    if missing:
        raise DataError(f"audit(y=...) has {missing} missing labels: drop those rows or fill them before auditing")
    if series.nunique() < 2:
        raise DataError(
            f"audit(y=...) has a single value ({series.iloc[0]!r}) in all {len(series)} rows: there is "
            f"nothing to predict; check that the target column is the right one"
        )
    task = infer_task(series)  # the one task rule, the one `cleanfit train` splits by
    return (series.to_numpy(dtype=np.float64) if task == "regression" else series.to_numpy()), task


def split_identity(splits: Any) -> dict[str, str]:
    """``{"method", "fingerprint"}`` of a split: a :class:`~cleanfit.Splits`' own, or, for any object
    with index arrays, ``"manual"`` (or its ``by``) and the fingerprint a Splits of the same rows has."""
    if not isinstance(splits, Splits):
        method = str(getattr(splits, "by", "manual"))
        splits = Splits(splits.train, splits.val, splits.test)
    else:
        method = splits.by
    return {"method": method, "fingerprint": splits.fingerprint}


def _parts(splits: Any, n: int) -> np.ndarray:
    names = [p for p in PART_NAMES if not hasattr(splits, p)]
    if names:
        raise DataError(
            f"audit(splits=...) got {type(splits).__name__} without {', '.join(names)}: pass a "
            f"cleanfit Splits (cf.split(...)) or any object with .train/.val/.test index arrays"
        )
    part = np.full(n, UNASSIGNED, dtype=np.int8)
    for code, p in enumerate(PART_NAMES):
        idx = np.asarray(getattr(splits, p), dtype=np.int64).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise DataError(
                f"audit(splits=...): splits.{p} holds row {int(idx.max() if idx.max() >= n else idx.min())}, "
                f"outside X's {n} rows; make the split from this same data"
            )
        if np.any(part[idx] != UNASSIGNED):
            raise DataError(
                f"audit(splits=...): splits.{p} shares rows with an earlier part; train, val and test "
                f"must be disjoint"
            )
        part[idx] = code
    if not np.any(part == TRAIN):
        raise DataError("audit(splits=...): splits.train is empty; the audit needs train rows")
    return part


def _time(values: np.ndarray) -> tuple[np.ndarray, str]:
    """The time column as sortable numbers (datetimes and durations as int64 nanoseconds), and its format."""
    times, fmt = parse_time(values, "audit(time=...)")
    return (times.view(np.int64) if times.dtype.kind in "Mm" else times), fmt


def _transformers(transformers: Any) -> tuple[Any, ...]:
    if transformers is None:
        return ()
    if hasattr(transformers, "fit") or hasattr(transformers, "transform"):
        return (transformers,)
    if isinstance(transformers, (str, bytes)) or not hasattr(transformers, "__iter__"):
        items: tuple[Any, ...] = (transformers,)
    else:
        items = tuple(transformers)
    for i, t in enumerate(items):
        if not (hasattr(t, "fit") and hasattr(t, "transform")):
            raise DataError(
                f"audit(transformers=...): item {i} is {type(t).__name__} {t!r:.40}, not a transformer; pass "
                f"the fitted scikit-learn objects themselves (e.g. transformers=[scaler]), not their names"
            )
    return items


def numeric_columns(data: AuditData) -> list[Any]:
    """Feature columns holding numbers or booleans."""
    cached = data.cache.get("numeric")
    if cached is None:
        cached = [c for c in data.features if data.X[c].dtype.kind in "iufb"]
        data.cache["numeric"] = cached
    return cached


def feature_codes(data: AuditData, column: Any) -> np.ndarray:
    """A feature as float64: numbers as they are, datetimes as int64 ns, other values as category codes.

    Missing values stay NaN, so a model can use missingness.
    """
    s = data.X[column]
    kind = s.dtype.kind
    if kind in "iufb":
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    if kind in "Mm":
        if isinstance(s.dtype, pd.DatetimeTZDtype):  # time-zone aware: the same instants in UTC
            s = s.dt.tz_convert("UTC").dt.tz_localize(None)
        unit = "datetime64[ns]" if kind == "M" else "timedelta64[ns]"
        out = s.to_numpy(dtype=unit).view(np.int64).astype(np.float64)
        out[s.isna().to_numpy()] = np.nan
        return out
    codes, _ = pd.factorize(s, sort=False)
    out = codes.astype(np.float64)
    out[codes < 0] = np.nan
    return out


def plural(count: int, word: str) -> str:
    """``"1 row"`` / ``"3 rows"``."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"
