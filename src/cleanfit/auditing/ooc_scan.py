"""Reading a Parquet table too large for memory: its files, its size, a memory budget, and row groups one by one.

:func:`open_table` resolves a file, a folder of ``*.parquet`` files or a glob into a :class:`ParquetTable`, reading
only the files' footers; every file must hold the columns the audit reads (a file missing one is a
:class:`~cleanfit.errors.DataError` naming the file and the column). :func:`row_groups` yields one row group
at a time as a pandas frame with its first global row number; an unreadable row group is an error naming the
file and the row group. :func:`memory_budget` reads ``memory="auto" | "2GB" | bytes``.

>>> memory_budget("1.5GB"), memory_budget("512MiB"), memory_budget(1000)
(1500000000, 536870912, 1000)
"""

from __future__ import annotations

import glob as _glob
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cleanfit.errors import ConfigError, DataError

AUTO_FRACTION = 0.5  # memory="auto": this share of the memory the machine has available
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
Progress = Callable[[int, int, float], None]  # (rows done, rows in all, seconds since the pass began)


def available_memory() -> int:
    """Bytes of memory the machine has available now (``MemAvailable``; else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def memory_budget(memory: Any, field: str = "audit(memory=...)") -> int:
    """The memory budget in bytes: ``"auto"`` (half the available memory), a size such as ``"2GB"`` or
    ``"512MiB"``, or a number of bytes. A table larger than it is audited out of core."""
    if isinstance(memory, str) and memory.strip().lower() == "auto":
        return int(AUTO_FRACTION * available_memory())
    if isinstance(memory, (int, float)) and not isinstance(memory, bool) and memory >= 0:
        return int(memory)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(memory))
    if match and match.group(2).upper() in _UNITS:
        return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    raise ConfigError(f"{field}: {memory!r} is not a memory size; use 'auto', a size such as '2GB' or '500MB', or bytes")


@dataclass
class ParquetTable:
    """The files of a Parquet table and their row groups: ``(file, row group, rows)`` in table order."""

    paths: list[Path]
    columns: list[str]
    groups: list[tuple[Path, int, int]]
    nbytes: int  # uncompressed size of the data, from the footers: about its size in memory

    @property
    def num_rows(self) -> int:
        return sum(rows for _, _, rows in self.groups)

    @property
    def name(self) -> str:
        return str(self.paths[0]) if len(self.paths) == 1 else f"{self.paths[0].parent} ({len(self.paths)} files)"


def is_parquet_path(value: Any) -> bool:
    """Whether ``value`` names a Parquet table: a ``.parquet`` file, a folder of them, or a glob."""
    if not isinstance(value, (str, os.PathLike)):
        return False
    text = os.fspath(value)
    return text.endswith(".parquet") or any(ch in text for ch in "*?[") or Path(text).is_dir()


def _files(path: str | os.PathLike) -> list[Path]:
    text = os.fspath(path)
    if any(ch in text for ch in "*?["):
        paths = sorted(Path(p) for p in _glob.glob(text))
    elif Path(text).is_dir():
        paths = sorted(Path(text).glob("*.parquet"))
    else:
        paths = [Path(text)]
    if not paths:
        raise DataError(f"{text}: no Parquet files there; give a .parquet file, a folder of them, or a glob")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: no such file; check the path")
    return paths


def open_table(path: str | os.PathLike, needed: Sequence[str]) -> ParquetTable:
    """Read the footers of the table's files; each must hold every column of the first file and ``needed``."""
    import pyarrow.parquet as pq

    paths = _files(path)
    columns: list[str] | None = None
    groups: list[tuple[Path, int, int]] = []
    nbytes = 0
    for p in paths:
        try:
            meta = pq.ParquetFile(p).metadata
            names = list(pq.read_schema(p).names)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a broken file
            raise DataError(f"{p}: cannot read it as Parquet ({exc}); rewrite or remove the file") from exc
        if columns is None:
            columns = [c for c in names if not c.startswith("__index_level_")]
            absent = [c for c in needed if c not in columns]
            if absent:
                raise DataError(f"{p}: no column {absent[0]!r}; the columns are {', '.join(columns[:15])}")
        else:
            absent = [c for c in columns if c not in names]
            if absent:
                raise DataError(f"{p}: column {absent[0]!r} is missing (the first file {paths[0]} has it); "
                                "every file of the table needs the same columns")
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            groups.append((p, g, rg.num_rows))
            nbytes += rg.total_byte_size
    assert columns is not None
    return ParquetTable(paths, columns, groups, nbytes)


def numeric_columns(table: ParquetTable) -> list[str]:
    """The columns the first file stores as numbers (integers, floats, booleans)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(table.paths[0])
    return [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_boolean(f.type)]


def row_groups(table: ParquetTable, columns: Sequence[str], progress: Progress | None = None) -> Iterator[tuple[int, pd.DataFrame, str]]:
    """Yield ``(first row, frame, where)`` for each row group, ``where`` naming its file and row group."""
    import pyarrow.parquet as pq

    start, began, total = 0, time.perf_counter(), table.num_rows
    current: tuple[Path, Any] | None = None
    for path, g, rows in table.groups:
        where = f"{path} (row group {g})"
        try:
            if current is None or current[0] != path:
                current = (path, pq.ParquetFile(path))
            frame = current[1].read_row_group(g, columns=list(columns)).to_pandas()
        except Exception as exc:  # noqa: BLE001 - a corrupt page, a bad codec: the file's fault
            raise DataError(f"{where}: cannot read this row group ({exc}); rewrite the file or remove it from the table") from exc
        yield start, frame, where
        start += rows
        if progress is not None:
            progress(start, total, time.perf_counter() - began)


class ConsoleProgress:
    """A :data:`Progress` that prints ``label: rows done / all (rows/s)`` about every 2% of the rows, and
    ``label: <step> (seconds)`` for each later step (:meth:`step`: the checks run over DuckDB's table)."""

    def __init__(self, label: str, echo: Callable[[str], None]) -> None:
        self.label, self.echo, self._next = label, echo, 0

    def __call__(self, done: int, total: int, seconds: float) -> None:
        if done < self._next and done < total:
            return
        self._next = done + max(1, total // 50)
        rate = done / seconds if seconds > 0 else 0.0
        self.echo(f"{self.label}: {done:,} / {total:,} rows ({rate:,.0f} rows/s)")

    def step(self, what: str, seconds: float) -> None:
        self.echo(f"{self.label}: {what} ({seconds:.1f} s)")


def console_progress(label: str, echo: Callable[[str], None]) -> ConsoleProgress:
    """The console's :class:`ConsoleProgress`.

    >>> p = console_progress("audit", print)
    >>> p(50, 100, 2.0); p(60, 100, 2.5); p(100, 100, 4.0)
    audit: 50 / 100 rows (25 rows/s)
    audit: 60 / 100 rows (24 rows/s)
    audit: 100 / 100 rows (25 rows/s)
    >>> p.step("duplicates", 1.25)
    audit: duplicates (1.2 s)
    """
    return ConsoleProgress(label, echo)
