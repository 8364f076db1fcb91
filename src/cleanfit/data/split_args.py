"""Checks and conversions for the arguments of :func:`cleanfit.split`.

Every user mistake becomes a :class:`~cleanfit.errors.DataError` that names the argument, the
value and the fix; the splitters in :mod:`cleanfit.data.splitters` then trust what they get.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

from cleanfit._util.args import check_seed as _check_seed
from cleanfit._util.args import is_fraction, is_int
from cleanfit._util.columns import did_you_mean, shown
from cleanfit.data.tables import parse_time
from cleanfit.errors import DataError

BY = ("random", "stratify", "group", "time")
_NEEDS = {"stratify": "y", "group": "groups", "time": "time"}


def row_count(n_or_data: Any) -> int:
    """The number of rows: ``n_or_data`` itself if it is an int, else ``len(n_or_data)``."""
    if isinstance(n_or_data, bool):
        raise DataError("split(n_or_data=...) got a bool: pass a row count or the data itself")
    if isinstance(n_or_data, (str, bytes)):
        raise DataError(f"split(n_or_data={n_or_data!r}) got text: pass a row count (int) or the data itself "
                        "(array, DataFrame, list); to split a file, read it first (pandas.read_csv)")
    if isinstance(n_or_data, numbers.Integral):
        n = int(n_or_data)
    elif hasattr(n_or_data, "shape") and len(getattr(n_or_data, "shape", ())) > 0:
        n = int(n_or_data.shape[0])
    else:
        try:
            n = len(n_or_data)
        except TypeError:
            raise DataError(
                f"split(n_or_data=...) got {type(n_or_data).__name__}: pass a row count (int) or "
                f"data with len() (array, DataFrame, list)"
            ) from None
    if n < 1:
        raise DataError(f"split(n_or_data=...) has {n} rows: there is nothing to split")
    return n


def check_by(by: Any) -> str:
    if by not in BY:
        raise DataError(f"split(by={by!r}) is not a known way to split: use one of {', '.join(map(repr, BY))}")
    return str(by)


def check_fractions(test: Any, val: Any) -> tuple[float, float]:
    for name, value in (("test", test), ("val", val)):
        if not is_fraction(value):
            raise DataError(
                f"split({name}={value!r}): {name} is the fraction of rows to hold out, a number in "
                f"[0, 1) such as 0.2"
            )
    if float(test) + float(val) >= 1:
        raise DataError(
            f"split(test={test}, val={val}): the fractions sum to {float(test) + float(val):g}, "
            f"which leaves nothing to train on; they must sum to less than 1"
        )
    return float(test), float(val)


def check_seed(seed: Any) -> int:
    return _check_seed(seed, "split")


def check_gap(gap: Any, gap_time: Any, by: str) -> int:
    if not is_int(gap) or gap < 0:
        raise DataError(f"split(gap={gap!r}): gap is a number of rows, an int >= 0")
    if by != "time" and (gap or gap_time is not None):
        raise DataError(
            f"split(by={by!r}) got gap={gap!r}, gap_time={gap_time!r}: gaps separate parts in time "
            f"order, so they need by='time' (and a time column)"
        )
    return int(gap)


def column(arg: Any, name: str, data: Any, n: int, by: str) -> Any:
    """``arg`` as a 1-D array or Series of length ``n``; a scalar names a column of ``data``."""
    if arg is None:
        raise DataError(f"split(by={by!r}) needs {name}=: an array with one value per row, or a column name")
    if np.ndim(arg) == 0:
        if not isinstance(data, pd.DataFrame):
            raise DataError(
                f"split({name}={arg!r}) names a column, but the data is not a pandas DataFrame: "
                f"pass the values as an array instead"
            )
        if arg not in data.columns:
            near = did_you_mean(arg, data.columns)
            raise DataError(
                f"split({name}={arg!r}): no such column; {near + ' ' if near else ''}the columns are "
                f"{shown(data.columns, 10)}"
            )
        arg = data[arg]
    values = arg if isinstance(arg, pd.Series) else np.asarray(arg)
    if values.ndim != 1:
        raise DataError(f"split({name}=...) must be 1-D (one value per row), got shape {values.shape}")
    if len(values) != n:
        raise DataError(f"split({name}=...) has {len(values)} values but the data has {n} rows: give one per row")
    return values


def codes(values: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, uniques)``: each row's class/group id ``0 .. k - 1`` and the labels they stand for."""
    try:
        found, uniques = pd.factorize(values, sort=True)
    except TypeError:  # labels of mixed types cannot be sorted; first-seen order is as stable
        found, uniques = pd.factorize(values)
    missing = int((found < 0).sum())
    if missing:
        raise DataError(
            f"split({name}=...) has {missing} missing value{'s' * (missing != 1)}: every row needs "
            f"one; fill or drop those rows first"
        )
    return found.astype(np.int64), np.asarray(uniques)


def time_values(values: Any) -> np.ndarray:
    """The time column as a sortable array: numbers, or datetime64/timedelta64 in nanoseconds."""
    return parse_time(values, "split(time=...)")[0]


def gap_time_value(gap_time: Any, t: np.ndarray) -> Any:
    """``gap_time`` in the units of ``t``: a timedelta64[ns] for datetimes, a number otherwise."""
    if gap_time is None:
        return None
    # np.timedelta64 counts as an Integral to Python's number ABCs; it is a duration here.
    is_number = isinstance(gap_time, numbers.Real) and not isinstance(gap_time, (bool, np.timedelta64))
    if t.dtype.kind in "Mm":
        if is_number:
            raise DataError(
                f"split(gap_time={gap_time!r}): the time column holds datetimes, so give the gap as "
                f"a duration, e.g. pd.Timedelta(days=7) or datetime.timedelta(hours=1)"
            )
        try:
            value = pd.Timedelta(gap_time)
        except (ValueError, TypeError):
            value = pd.NaT
        if value is pd.NaT or value < pd.Timedelta(0):
            raise DataError(f"split(gap_time={gap_time!r}): give a duration >= 0, e.g. pd.Timedelta(days=7)")
        return value.to_timedelta64().astype("timedelta64[ns]")
    if isinstance(gap_time, (dt.timedelta, np.timedelta64, str)):
        raise DataError(
            f"split(gap_time={gap_time!r}): the time column holds numbers, so give the gap as a "
            f"number in the same units"
        )
    if not is_number or not math.isfinite(gap_time) or gap_time < 0:
        raise DataError(f"split(gap_time={gap_time!r}): give a number >= 0 in the time column's units")
    return gap_time


def needs(by: str) -> str | None:
    """The argument ``by`` cannot do without (``"y"``, ``"groups"``, ``"time"``) or None."""
    return _NEEDS.get(by)
