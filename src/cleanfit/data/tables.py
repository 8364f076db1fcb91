"""Reading a CSV or Parquet table, with errors that name the file (and the config field) and the fix."""

from __future__ import annotations

from pathlib import Path

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
    frame.columns = [str(column) for column in frame.columns]
    return frame
