"""The one streaming pass of the out-of-core audit: row groups in, a compact DuckDB table out.

Each row group is read once (:func:`~cleanfit.auditing.ooc_scan.row_groups`) and reduced in NumPy to a few
fixed-width columns per row, which DuckDB stores (spilling to disk past its memory limit):

    row    BIGINT    the global row number
    skey   UBIGINT   the split key (rowsplit.row_keys or rowsplit.group_keys)
    key    UBIGINT   the row's exact-duplicate key: overlap.hash_rows over the features, as the in-memory audit
    lkey   UBIGINT   key folded with the label (a copy with a different label)
    y      the target as stored            t  DOUBLE/BIGINT the time (as the in-memory audit reads it)
    g      UBIGINT   the group value's key, rowsplit.group_keys (NULL for a missing group)
    part   TINYINT   0/1/2 for random and group splits (stratify and time are ranked afterwards in SQL)
    sampled BOOLEAN  in the uniform row sample the model-based checks run on

and, only with ``keep`` columns (the inputs of the transformers the ``preprocessing`` check verifies), a second
table ``pre`` of ``row, p0, p1, ...`` (their values as stored, missing values NULL), kept apart so the wide
columns never go through the split's window sort.

Along the way it keeps what needs the stored order (label changes between neighbouring rows, single-class
blocks, steps back in time) and the sampled rows' feature values, and checks the target of every row group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cleanfit.auditing.ooc_scan import ParquetTable, Progress, row_groups
from cleanfit.auditing.overlap import combine, hash_column, hash_rows
from cleanfit.data.rowsplit import RowSplit, group_keys, part_of_keys, row_keys
from cleanfit.data.tables import MAX_CLASSES, infer_task, parse_time
from cleanfit.errors import DataError

BATCH = 32  # the label-order check's batch size (as the in-memory check)
_SAMPLE_SEED = 2**32  # sample keys use a seed no split can have, so the sample is independent of the split


@dataclass
class Order:
    """What the stored order shows: label changes between neighbouring rows, single-label blocks of
    :data:`BATCH` rows, and the time column's steps back and forward."""

    changes: int = 0
    pure_blocks: int = 0
    blocks: int = 0
    time_back: int = 0
    time_forward: int = 0
    _last_label: Any = None
    _last_time: Any = None
    _carry: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.uint64))

    def add(self, labels: np.ndarray, times: np.ndarray | None) -> None:
        codes = labels if self._last_label is None else np.r_[self._last_label, labels]
        self.changes += int(np.count_nonzero(codes[1:] != codes[:-1]))
        self._last_label = labels[-1:]
        buf = np.r_[self._carry, labels]
        full = len(buf) // BATCH
        blocks = buf[: full * BATCH].reshape(full, BATCH)
        self.pure_blocks += int(np.all(blocks == blocks[:, :1], axis=1).sum())
        self.blocks += full
        self._carry = buf[full * BATCH:]
        if times is not None:
            t = times if self._last_time is None else np.r_[self._last_time, times]
            self.time_back += int(np.count_nonzero(t[1:] < t[:-1]))
            self.time_forward += int(np.count_nonzero(t[1:] > t[:-1]))
            self._last_time = times[-1:]


@dataclass
class Loaded:
    """The DuckDB table ``rows`` and what the pass learned."""

    n: int
    task: str
    order: Order
    sample: pd.DataFrame  # the sampled rows' feature, time and group columns (RangeIndex)
    sample_y: np.ndarray
    sample_rows: np.ndarray  # their global row numbers (sorted)
    time_format: str = "number"


class _Labels:
    """The distinct target values seen (up to MAX_CLASSES + 1), enough for the one task rule."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.dtype: Any = None

    def add(self, y: pd.Series) -> None:
        self.dtype = y.dtype if self.dtype is None else self.dtype
        if len(self.values) <= MAX_CLASSES:
            self.values = list(pd.unique(pd.Series(self.values + list(pd.unique(y)), dtype=object)))[: MAX_CLASSES + 1]

    def task(self) -> str:
        return infer_task(pd.Series(self.values).astype(self.dtype) if self.dtype is not None else pd.Series(self.values))


def _target(frame: pd.DataFrame, target: str, where: str) -> pd.Series:
    y = frame[target]
    missing = int(y.isna().sum())
    if missing == len(y):
        raise DataError(f"{where}: the target column {target!r} is empty in all {len(y):,} rows of this row group; "
                        "fill it or remove those rows before auditing")
    if missing:
        raise DataError(f"{where}: the target column {target!r} has {missing:,} empty rows; drop them or fill them first")
    return y


def _batch(rows: np.ndarray, frame: pd.DataFrame, y: pd.Series, key: np.ndarray, label_hash: np.ndarray,
           t: np.ndarray | None, group: str | None, spec: RowSplit, in_sample: np.ndarray) -> Any:
    """One row group's columns of the DuckDB table ``rows``, as an Arrow table."""
    import pyarrow as pa

    skey = group_keys(frame[group], spec.seed) if spec.by == "group" else row_keys(rows, spec.seed)
    part = part_of_keys(skey, spec) if spec.by in ("random", "group") else None
    cols = {"row": pa.array(rows), "skey": pa.array(skey), "key": pa.array(key),
            "lkey": pa.array(combine(key, label_hash)), "y": pa.Array.from_pandas(y)}
    if t is not None:
        cols["t"] = pa.array(t)
    if group is not None:
        g = frame[group]
        cols["g"] = pa.array(group_keys(g, 0), mask=g.isna().to_numpy())
    cols["part"] = pa.array(part, type=pa.int8()) if part is not None else pa.nulls(len(rows), pa.int8())
    cols["sampled"] = pa.array(in_sample)
    return pa.table(cols)


def _kept(rows: np.ndarray, frame: pd.DataFrame, keep: Sequence[str]) -> Any:
    """One row group's rows of the table ``pre``: the row number and the ``keep`` columns as ``p0, p1, ...``."""
    import pyarrow as pa

    cols = {"row": pa.array(rows)}
    for j, c in enumerate(keep):
        cols[f"p{j}"] = pa.Array.from_pandas(frame[c])  # NaN -> NULL, as scikit-learn skips NaN
    return pa.table(cols)


def stream(con: Any, table: ParquetTable, *, features: list[str], target: str, time: str | None, group: str | None,
           spec: RowSplit, sample: int, progress: Progress | None = None, keep: Sequence[str] = ()) -> Loaded:
    """Read every row group once into the DuckDB table ``rows``; see the module docstring."""
    n = table.num_rows
    keep_below = np.uint64(min(2**64 - 1, int(min(1.0, sample / max(n, 1)) * 2**64)))
    order, labels = Order(), _Labels()
    sampled: list[pd.DataFrame] = []
    sampled_y: list[np.ndarray] = []
    sampled_rows: list[np.ndarray] = []
    time_format = "number"
    columns = list(dict.fromkeys(features + [target] + [c for c in (time, group) if c]))
    created = False
    for start, frame, where in row_groups(table, columns, progress):
        rows = np.arange(start, start + len(frame), dtype=np.int64)
        y = _target(frame, target, where)
        labels.add(y)
        key = hash_rows(frame, features) if features else np.zeros(len(frame), dtype=np.uint64)
        label_hash = hash_column(y)
        t = None
        if time is not None:
            parsed, time_format = parse_time(frame[time], f"{where}: time column {time!r}")
            t = parsed.view(np.int64) if parsed.dtype.kind in "Mm" else parsed
        order.add(label_hash, t)
        in_sample = row_keys(rows, _SAMPLE_SEED + spec.seed) <= keep_below if sample < n else np.ones(len(rows), bool)
        batch = _batch(rows, frame, y, key, label_hash, t, group, spec, in_sample)  # noqa: F841 - DuckDB reads it by name
        con.execute("INSERT INTO rows SELECT * FROM batch" if created else "CREATE TABLE rows AS SELECT * FROM batch")
        if keep:
            kept = _kept(rows, frame, keep)  # noqa: F841 - DuckDB reads it by name
            con.execute("INSERT INTO pre SELECT * FROM kept" if created else "CREATE TABLE pre AS SELECT * FROM kept")
        created = True
        if in_sample.any():
            sampled.append(frame.loc[in_sample, [c for c in columns if c != target]])
            sampled_y.append(y.to_numpy()[in_sample])
            sampled_rows.append(rows[in_sample])
    if not created:
        raise DataError(f"{table.name}: the table has no rows; there is nothing to audit")
    frame = pd.concat(sampled, ignore_index=True) if sampled else pd.DataFrame(columns=columns)
    y_all = np.concatenate(sampled_y) if sampled_y else np.empty(0)
    return Loaded(n, labels.task(), order, frame, y_all, np.concatenate(sampled_rows) if sampled_rows else np.empty(0, np.int64),
                  time_format)
