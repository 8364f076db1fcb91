"""Tables: reading a CSV or Parquet file, and the rules every stage reads a table by.

- :func:`read_table`: a CSV/Parquet file as a DataFrame, with errors that name the file (and the
  config field) and the fix;
- :func:`infer_task`: the ONE task rule (classification or regression), used by the audit,
  ``cleanfit audit``, ``cleanfit train`` and :func:`cleanfit.compare`;
- :func:`parse_time`: the ONE reading of a time column, used by :func:`cleanfit.split`, the audit and
  a config's ``data.time``;
- :func:`text_column_problem`: the ONE rule for text columns that are not features (dates stored as
  text, identifiers, too many levels), used by the audit and ``cleanfit train``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cleanfit.errors import DataError

CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".gz", ".bz2", ".zip", ".xz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | Path, *, field: str | None = None) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.tsv``, compressed) or Parquet file into a DataFrame with string column names.

    Every failure is a :class:`DataError` that names the file, and ``field`` (e.g. ``"data.path"``)
    when the path came from a config.
    """
    path = Path(path)
    where = f"{field} = {str(path)!r}" if field else str(path)
    if not path.exists():
        hint = " (relative paths start at the config's folder)" if field else ""
        raise DataError(f"{where}: file not found; check the path{hint}")
    if path.is_dir():
        raise DataError(f"{where}: is a directory; give the path of a .csv or .parquet file")
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        elif suffix in CSV_SUFFIXES:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", low_memory=False)
        else:
            raise DataError(f"{where}: unknown file type {suffix!r}; use a .csv or .parquet file")
    except pd.errors.EmptyDataError:
        raise DataError(f"{where}: the file is empty; it needs a header row and data rows") from None
    except DataError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise DataError(
            f"{where}: cannot read the file ({type(exc).__name__}: {reason}); is it a valid {suffix[1:]} file?"
        ) from None
    except Exception as exc:  # pyarrow raises its own types for broken Parquet files
        if type(exc).__module__.startswith("pyarrow"):
            raise DataError(f"{where}: cannot read the Parquet file ({exc}); is it a valid Parquet file?") from None
        raise
    if len(frame) == 0:
        raise DataError(f"{where}: the file has a header but no data rows")
    if suffix in CSV_SUFFIXES and frame.shape[1] == 1:
        _check_separator(str(frame.columns[0]), where, "\t" if suffix == ".tsv" else ",")
    frame.columns = [str(column) for column in frame.columns]
    return frame


def _check_separator(header: str, where: str, expected: str) -> None:
    """One column whose name holds ``;``, ``|`` or a tab: the file is separated by that, not by ``expected``."""
    for separator, name in ((";", "semicolons"), ("|", "'|'"), ("\t", "tabs"), (",", "commas")):
        if separator != expected and separator in header:
            shown = "tabs" if expected == "\t" else "commas"
            raise DataError(
                f"{where}: read as one column named {header[:60]!r}: the file looks separated by {name}, not "
                f"{shown}; save it with {shown} (pandas: to_csv(sep={expected!r}))"
            )


# -- the task rule: one for the audit, `cleanfit audit`, `cleanfit train` and compare ---------------------------

MAX_CLASSES = 20  # an integral target with at most this many distinct values is read as classes


def infer_task(values: Any) -> str:
    """``"classification"`` for text, boolean, categorical or few-valued integral targets, else ``"regression"``.

    Integral means whole numbers, as ints or as floats (``1.0``); few means at most :data:`MAX_CLASSES`
    distinct values. Missing values are ignored.

    >>> infer_task(pd.Series([0, 1, 1, 0])), infer_task(pd.Series(["a", "b"])), infer_task(pd.Series([0.5, 1.25]))
    ('classification', 'classification', 'regression')
    >>> infer_task(np.arange(30))  # 30 whole numbers: too many to be classes
    'regression'
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    series = series.dropna()
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return "classification"
    if pd.api.types.is_complex_dtype(series):
        return "regression"
    numbers = series.to_numpy(dtype=float)
    integral = bool(np.all(np.isfinite(numbers)) and np.all(np.mod(numbers, 1.0) == 0))
    return "classification" if integral and series.nunique() <= MAX_CLASSES else "regression"


# -- time columns: one reading for split(by="time"), the audit and the data.time of a config --------------------

TIME_FORMATS = ("number", "datetime", "datetime-utc", "timedelta")


def parse_time(values: Any, where: str) -> tuple[np.ndarray, str]:
    """A time column as a sortable array, and how to print it.

    Returns ``(times, format)``: ``times`` is int64/float64 for numbers, else datetime64[ns] (naive, in
    UTC when the values carried a time zone) or timedelta64[ns]; ``format`` is one of
    :data:`TIME_FORMATS`. Text is parsed as dates (each value on its own; offsets that differ, such
    as summer and winter time, become the same instants in UTC); periods become their start times.
    Missing or unreadable values raise a :class:`DataError` that starts with ``where`` (e.g.
    ``"split(time=...)"``).

    >>> parse_time(["2024-01-02", "2024-01-01"], "time")
    (array(['2024-01-02T00:00:00.000000000', '2024-01-01T00:00:00.000000000'],
          dtype='datetime64[ns]'), 'datetime')
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    missing = int(series.isna().sum())
    if missing:
        raise DataError(
            f"{where} has {missing} missing value{'s' * (missing != 1)}: every row needs a time; "
            f"fill or drop those rows first"
        )
    if isinstance(series.dtype, pd.PeriodDtype):  # months, quarters ...: their start times
        series = series.dt.to_timestamp()
    if series.dtype.kind == "O" or pd.api.types.is_string_dtype(series.dtype):
        series = _parse_dates(series, where)
    fmt = "datetime"
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        fmt = "datetime-utc"
    kind = series.dtype.kind
    if kind == "M":
        return series.to_numpy(dtype="datetime64[ns]"), fmt
    if kind == "m":
        return series.to_numpy(dtype="timedelta64[ns]"), "timedelta"
    if kind in "iuf":
        return series.to_numpy(dtype=np.float64 if kind == "f" else np.int64), "number"
    raise DataError(f"{where} holds {series.dtype} values: the time column must be numbers or datetimes")


def _parse_dates(series: pd.Series, where: str) -> pd.Series:
    with warnings.catch_warnings():  # "could not infer format": each value is parsed on its own
        warnings.simplefilter("ignore", UserWarning)
        for utc in (False, True):  # utc=True: offsets that differ (summer and winter time)
            try:
                return pd.to_datetime(series, utc=utc, format="mixed")
            except (ValueError, TypeError, OverflowError):
                continue
    row, value = _first_unparsed(series)
    raise DataError(
        f"{where} holds {value!r} on data row {row} (counting from 1, after the header), which is neither a "
        f"number nor a date: the time column must be numbers or datetimes (ISO dates such as 2024-01-31)"
    )


# -- text columns that are not features: one rule for the audit and `cleanfit train` ------------------------

MAX_TEXT_LEVELS = 100  # a text column with more distinct values is not one-hot encoded by `cleanfit train`
MOSTLY_DISTINCT = 0.5  # ... nor one with a distinct value on more than this share of its rows
_DATE_SAMPLE = 50
# a date has a year (4 digits beside a separator or a month name, or d/m/yy) or a time of day (hh:mm)
_DATE_SHAPE = re.compile(
    r"(?:^|\D)[12]\d{3}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{2}|\d{4})(?:\D|$)|\d{1,2}:\d{2}|"
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,? +(?:\d{1,2},? +)?[12]\d{3}\b|"
    r"\b\d{1,2} +(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* +[12]\d{3}\b",
    re.I,
)


@dataclass(frozen=True)
class TextColumn:
    """What a text column is, when it is not a feature: ``kind`` is ``"date"`` (dates or times stored as
    text), ``"identifier"`` (a distinct value on most rows) or ``"levels"`` (more than
    :data:`MAX_TEXT_LEVELS` values); ``distinct`` counts its values, ``share`` is ``distinct`` over the
    rows that have a value, ``example`` one value."""

    column: str
    kind: str
    distinct: int
    share: float
    example: str


def is_text(series: pd.Series) -> bool:
    """Whether a column holds text (object or string dtype), not numbers, datetimes or categories."""
    return series.dtype.kind == "O" or pd.api.types.is_string_dtype(series.dtype) and not isinstance(
        series.dtype, pd.CategoricalDtype)


def looks_like_dates(series: pd.Series) -> bool:
    """Whether text values are dates or times (``"2012-01-01"``, ``"01/31/2024 10:00"``, ``"Jan 5 2020"``).

    Judged on the first 50 values that are present: at least 90% must have the shape of a date (a year,
    or a time of day) and parse as one. Age bands, fractions, versions and month names alone are not dates.

    >>> looks_like_dates(pd.Series(["2012-01-01", "2012-01-02"])), looks_like_dates(pd.Series(["W-0001", "W-0002"]))
    (True, False)
    >>> looks_like_dates(pd.Series(["10-14", "15-19"])), looks_like_dates(pd.Series(["may", "june"]))
    (False, False)
    """
    # bytes are text of an unknown encoding: decoded leniently (pandas' str() of undecodable bytes raises)
    sample = pd.Series([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                        for v in series.dropna().head(_DATE_SAMPLE)], dtype=object)
    if sample.empty or sample.str.contains(_DATE_SHAPE).mean() < 0.9:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        except (ValueError, TypeError, OverflowError):
            return False
    return bool(parsed.notna().mean() >= 0.9)


def text_column_problem(series: pd.Series, name: Any = None) -> TextColumn | None:
    """The reason a text column is not a feature to one-hot encode, or None (numbers and few-level text).

    >>> text_column_problem(pd.Series(["2012-01-01", "2012-01-02", "2012-01-03"]), "date").kind
    'date'
    >>> text_column_problem(pd.Series([f"car {i}" for i in range(300)]), "Name").kind
    'identifier'
    >>> text_column_problem(pd.Series(["a", "b", "a"] * 50), "colour") is None
    True
    """
    if not is_text(series):
        return None
    present = series.dropna()
    if present.empty:
        return None
    return text_problem_of_counts(str(series.name if name is None else name), int(present.nunique()), len(present),
                                  present.head(_DATE_SAMPLE))


def text_problem_of_counts(column: str, distinct: int, present: int, head: pd.Series) -> TextColumn | None:
    """:func:`text_column_problem` from a text column's counts: ``distinct`` values among ``present`` rows
    with a value, ``head`` its first present values (what a table too large to load gives, from DuckDB).

    >>> text_problem_of_counts("Name", 300, 300, pd.Series(["car 0", "car 1"])).kind
    'identifier'
    """
    if present == 0:
        return None
    share = distinct / present
    example = str(head.iloc[0])
    if looks_like_dates(head):
        return TextColumn(column, "date", distinct, share, example)
    if share > MOSTLY_DISTINCT and distinct > 20:
        return TextColumn(column, "identifier", distinct, share, example)
    if distinct > MAX_TEXT_LEVELS:
        return TextColumn(column, "levels", distinct, share, example)
    return None


def _first_unparsed(series: pd.Series) -> tuple[int, Any]:
    """The first value (1-based row, value) that does not parse as a date."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(series, errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero((series.notna() & parsed.isna()).to_numpy())
    if bad.size:
        return int(bad[0]) + 1, series.iloc[int(bad[0])]
    return 1, series.iloc[0]  # each parses alone, only not together (mixed kinds)
