"""A Parquet table larger than ``audit.memory``: checked, split, preprocessed and trained without loading it.

:func:`cleanfit.pipeline.prepare.prepare` sends such a table here. What is held for the whole table is one
int8 part per row (:class:`PartSplit`) and, while the split is made, the columns it needs (target, time,
group); everything else is read by DuckDB or one row group at a time:

1. :func:`open_large`: the schema alone (Parquet footers) is checked as the in-memory path checks a frame
   (every column the config names, the feature columns' kinds);
2. :func:`read_split_columns`: the target, time and group columns with pyarrow, for the row split
   (:mod:`cleanfit.data.rowsplit`, the split the out-of-core audit reports); :func:`~cleanfit.pipeline.prepare.encode_large_target`
   encodes the target in a few bytes a row;
3. :func:`check_values`: the in-memory value checks (infinite numbers, holes with ``impute = "none"``, text
   columns that are not features) over every row, in one DuckDB pass;
4. :func:`fit_preprocessing`: the statistics the ColumnTransformer would learn from the train rows (median,
   mean or most frequent value; mean and std, min and max, or median and quartiles of the imputed values;
   the categories), computed by DuckDB over the Parquet files restricted to the train rows, as the
   ``model.json`` spec :class:`~cleanfit.pipeline.saved.Preprocessing` applies;
5. :meth:`LargeData.source`: a :class:`~cleanfit.data.outofcore.ParquetPartSource` per part, whose blocks
   are the row groups' rows of that part, preprocessed, for :class:`~cleanfit.Batches`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cleanfit.auditing.ooc_scan import ParquetTable
from cleanfit.data.outofcore import ParquetPartSource
from cleanfit.data.rowsplit import TEST, TRAIN, VAL
from cleanfit.data.tables import text_problem_of_counts
from cleanfit.errors import DataError
from cleanfit.pipeline.config import Config, PreprocessConfig
from cleanfit.pipeline.features import (
    check_columns, column_kinds, feature_frame, holes_error, infinite_error, model_values, refuse_text_problems,
)
from cleanfit.pipeline.saved import Preprocessing

LOADING = "out-of-core"  # the run's ``data.loading`` (in memory: "in-memory")
PARTS = {"train": TRAIN, "val": VAL, "test": TEST}
_EPS = float(np.finfo(np.float64).eps)


@dataclass
class LargeTable:
    """A table over the budget as far as its footers tell: the files, no rows, the feature columns' kinds."""

    table: ParquetTable
    frame: pd.DataFrame  # no rows: the file's columns with the dtypes pandas reads them as
    features: pd.DataFrame  # no rows: the feature columns, as feature_frame makes them
    numeric: list[str]
    text: list[str]


def open_large(config: Config, table: ParquetTable) -> LargeTable:
    """The schema checks of the in-memory path, on the first file's schema (:func:`open_table` checked that
    every file has its columns). Features must be numbers, booleans or text."""
    import pyarrow.parquet as pq
    import pyarrow.types as pat

    schema = pq.read_schema(table.paths[0])
    frame = schema.empty_table().to_pandas().reset_index(drop=True)
    frame = frame[[c for c in table.columns if c in frame.columns]]
    check_columns(frame, config)
    features = feature_frame(frame, config)
    for name in features.columns:
        kind = schema.field(name).type
        if pat.is_dictionary(kind):
            kind = kind.value_type
        if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_boolean(kind) or pat.is_decimal(kind)
                or pat.is_string(kind) or pat.is_large_string(kind)):
            raise DataError(
                f"column {name!r} of {table.name} holds {kind}: a table larger than audit.memory is trained on its "
                f"numbers and text only; list it in data.drop (a time: set data.time = {name!r}), or raise audit.memory"
            )
    numeric, text = column_kinds(features)
    return LargeTable(table, frame, features, numeric, text)


def read_split_columns(config: Config, table: ParquetTable) -> Any:
    """The columns the split needs (target, and time and group when set), every row, nothing else, as one
    pyarrow Table (``prepare.encode_large_target`` encodes the target from it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = config.data
    columns = [c for c in (data.target, data.time, data.group) if c is not None]
    try:
        pieces = [pq.read_table(p, columns=columns) for p in table.paths]
    except Exception as exc:  # noqa: BLE001 - a corrupt page, a bad codec: the file's fault
        raise DataError(f"{table.name}: cannot read the columns {columns} ({exc}); rewrite the broken file") from exc
    return pa.concat_tables(pieces)


class PartSplit:
    """The row split of a table over the budget, held as one int8 part per row (0 train, 1 val, 2 test, -1 a
    time split's gap row: in no part, never trained or scored on).

    ``fingerprint`` and ``by`` are those of the :class:`~cleanfit.Splits` of the same parts (the split the
    out-of-core audit reports); ``train`` / ``val`` / ``test`` are computed when asked for.

    >>> s = PartSplit(np.array([0, 2, 0, 1], dtype=np.int8), "row-random", "ab12")
    >>> s.train, s.sizes
    (array([0, 2]), {'train': 2, 'val': 1, 'test': 1})
    >>> PartSplit(np.array([0, 0, -1, 2], dtype=np.int8), "row-time", "cd34").sizes  # row 2: the gap
    {'train': 2, 'val': 0, 'test': 1}
    """

    def __init__(self, part: np.ndarray, by: str, fingerprint: str) -> None:
        self.part, self.by, self.fingerprint = part, by, fingerprint
        self.sizes = {name: int(np.count_nonzero(part == code)) for name, code in PARTS.items()}

    @property
    def train(self) -> np.ndarray:
        return np.flatnonzero(self.part == TRAIN)

    @property
    def val(self) -> np.ndarray:
        return np.flatnonzero(self.part == VAL)

    @property
    def test(self) -> np.ndarray:
        return np.flatnonzero(self.part == TEST)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"PartSplit(by={self.by!r}, {sizes}, fingerprint={self.fingerprint[:12]!r})"


@dataclass
class LargeData:
    """What training needs of a table over the budget: its part array, the fitted preprocessing, the target's
    encoding; :meth:`source` reads one part block by block."""

    large: LargeTable
    part: np.ndarray
    preprocessing: Preprocessing
    target: str
    classes: list[Any] | None
    target_scale: tuple[float, float]
    example: pd.DataFrame  # the first rows' features, for MLflow's signature
    buffer_blocks: int = 8
    _sources: dict[str, ParquetPartSource] = field(default_factory=dict, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.part)

    def rows(self, part: str) -> int:
        return int(np.count_nonzero(self.part == PARTS[part]))

    def summary(self, memory: int) -> str:
        """The console line that says the run reads the table block by block.

        >>> from pathlib import Path
        >>> t = LargeTable(ParquetTable([Path("big.parquet")], ["a"], [(Path("big.parquet"), 0, 4)], 3_000_000), *[None] * 4)
        >>> LargeData(t, np.zeros(4, np.int8), None, "y", None, (0.0, 1.0), None).summary(10**6)
        'cleanfit: big.parquet (4 rows, 3.0 MB) is larger than audit.memory (1.0 MB): audited, preprocessed and trained out of core, one row group at a time'
        """
        table = self.large.table
        return (f"cleanfit: {table.name} ({table.num_rows:,} rows, {_size(table.nbytes)}) is larger than "
                f"audit.memory ({_size(memory)}): audited, preprocessed and trained out of core, one row group at a time")


    def source(self, part: str) -> ParquetPartSource:
        """The rows of ``part``, a block (row group) at a time, as ``(X float32, y)``: class codes, or the
        target standardised by the train rows' mean and std."""
        if part not in self._sources:
            columns = [*self.large.features.columns, self.target]
            self._sources[part] = ParquetPartSource(self.large.table.paths, self.part, PARTS[part], columns=columns,
                                                    transform=self._transform, buffer_blocks=self.buffer_blocks)
        return self._sources[part]

    def _transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        X = self.preprocessing.transform(model_values(frame, self.large.numeric, self.large.text))
        y = frame[self.target]
        if self.classes is None:
            mean, std = self.target_scale
            values = ((y.to_numpy(dtype=np.float64).astype(np.float32) - mean) / std).astype(np.float32)
        else:
            values = pd.Index(self.classes, dtype=object).get_indexer(y.astype(object).to_numpy()).astype(np.int64)
        return np.ascontiguousarray(X, dtype=np.float32), values


def example_rows(large: LargeTable, rows: int = 5) -> pd.DataFrame:
    """The first ``rows`` rows' feature columns (read from the first row group only)."""
    import pyarrow.parquet as pq

    first = pq.ParquetFile(large.table.paths[0]).read_row_group(0, columns=list(large.features.columns))
    return first.slice(0, rows).to_pandas().reset_index(drop=True)


def file_fingerprint(table: ParquetTable) -> str:
    """The data's identity without loading it: sha256 of the files' bytes, read in 8 MiB pieces (any change to
    the files is another run; ``run.json`` and MLflow's ``data.fingerprint`` hold it)."""
    digest = hashlib.sha256()
    for path in table.paths:
        with open(path, "rb") as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
    return f"{table.num_rows} rows x {len(table.columns)} columns parquet {digest.hexdigest()[:16]}"


@contextmanager
def duckdb_over(table: ParquetTable, columns: Sequence[str], numeric: Sequence[str], memory: int) -> Iterator[Any]:
    """A DuckDB connection with the view ``src(columns...)`` over the table's files, in table order (numbers as DOUBLE,
    NaN read as missing, as pandas does), in a temporary folder it may spill to."""
    import duckdb

    with tempfile.TemporaryDirectory(prefix="cleanfit-train-") as tmp:
        con = duckdb.connect(os.path.join(tmp, "stats.duckdb"))
        try:
            con.execute(f"SET memory_limit = '{max(64 * 2**20, memory // 4)}B'")
            con.execute(f"SET temp_directory = '{tmp}'")
            con.execute("SET preserve_insertion_order = true")  # DuckDB's default, stated: the POSITIONAL JOIN needs it
            picked = ", ".join(_clean(c) if c in numeric else _q(c) for c in columns)
            files = ", ".join("'" + str(path).replace("'", "''") + "'" for path in table.paths)
            # one scan of the files in their order (a UNION ALL of scans need not keep it): rows in table order
            con.execute(f"CREATE VIEW src AS SELECT {picked} FROM read_parquet([{files}], union_by_name = false)")
            yield con
        finally:
            con.close()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _clean(name: str) -> str:
    value = f"{_q(name)}::DOUBLE"
    return f"CASE WHEN isnan({value}) THEN NULL ELSE {value} END AS {_q(name)}"


def check_values(con: Any, large: LargeTable, config: Config) -> None:
    """The in-memory path's checks on values, over every row: infinite numbers, holes with ``impute = "none"``,
    text columns that are not features (:func:`~cleanfit.data.tables.text_problem_of_counts`)."""
    numeric, text = large.numeric, large.text
    aggregates = [f"count(*) FILTER (WHERE isinf({_q(c)}))" for c in numeric]
    aggregates += [f"count(*) FILTER (WHERE {_q(c)} IS NULL)" for c in numeric]
    aggregates += [f"count({_q(c)}), count(DISTINCT {_q(c)})" for c in text]
    if not aggregates:
        return
    counts = con.execute(f"SELECT {', '.join(aggregates)} FROM src").fetchall()[0]
    k = len(numeric)
    for column, infinite in zip(numeric, counts[:k]):
        if infinite:
            raise infinite_error(column)
    holes = [c for c, n in zip(numeric, counts[k:2 * k]) if n]
    if holes and config.preprocess.impute == "none":
        raise holes_error(holes)
    problems = []
    for i, column in enumerate(text):
        present, distinct = counts[2 * k + 2 * i], counts[2 * k + 2 * i + 1]
        head = con.execute(f"SELECT {_q(column)} FROM src WHERE {_q(column)} IS NOT NULL LIMIT 50").fetchall()
        problem = text_problem_of_counts(column, int(distinct), int(present), pd.Series([v for (v,) in head], dtype=object))
        if problem is not None:
            problems.append(problem)
    refuse_text_problems(problems, large.table.name)


def fit_preprocessing(con: Any, large: LargeTable, settings: PreprocessConfig, part: np.ndarray) -> dict[str, Any]:
    """The ColumnTransformer's fitted statistics on the train rows (``part == 0``), as
    :func:`~cleanfit.pipeline.saved.preprocess_spec` writes them, computed by DuckDB."""
    import pyarrow as pa

    con.register("parts", pa.table({"part": part}))  # the int8 parts as they are, no copy: row i of src is part[i]
    con.execute(f"CREATE TEMP VIEW train AS SELECT src.* FROM src POSITIONAL JOIN parts WHERE parts.part = {TRAIN}")
    spec: dict[str, Any] = {"numeric": None, "categorical": None}
    if large.numeric:
        spec["numeric"] = {"columns": list(large.numeric), "steps": _numeric_steps(con, large.numeric, settings)}
    if large.text:
        categories = []
        for column in large.text:  # text_values: a missing value is the category "missing"
            values = con.execute(f"SELECT DISTINCT coalesce({_q(column)}::VARCHAR, 'missing') FROM train").fetchall()
            categories.append(sorted(v for (v,) in values))
        encoding = "onehot" if settings.categorical == "onehot" else "ordinal"
        spec["categorical"] = {"columns": list(large.text), "encoding": encoding, "categories": categories}
    return spec


def _numeric_steps(con: Any, columns: Sequence[str], settings: PreprocessConfig) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    filled = [_q(c) for c in columns]
    if settings.impute != "none":  # SimpleImputer(keep_empty_features=True): a column with no value gets 0
        values = [_impute_value(con, c, settings.impute) for c in columns]
        steps.append({"op": "impute", "values": values})
        filled = [f"coalesce({_q(c)}, {v!r}::DOUBLE)" for c, v in zip(columns, values)]
    if settings.scale == "none":
        return steps
    n = con.execute("SELECT count(*) FROM train").fetchall()[0][0]
    if settings.scale == "standard":
        stats = _row(con, [f"avg({f}), var_pop({f})" for f in filled])
        mean, var = stats[0::2], stats[1::2]
        scale = [1.0 if _constant(v, m, n) else float(np.sqrt(v)) for m, v in zip(mean, var)]
        steps.append({"op": "subtract_divide", "sub": mean, "div": scale})
    elif settings.scale == "minmax":
        stats = _row(con, [f"min({f}), max({f})" for f in filled])
        low, high = stats[0::2], stats[1::2]
        scale = [1.0 / _nonzero(h - lo) for lo, h in zip(low, high)]
        steps.append({"op": "multiply_add", "mul": scale, "add": [-lo * s for lo, s in zip(low, scale)]})
    else:  # robust: the median and the interquartile range
        stats = [[0.0 if v is None else v for v in exact_quantiles(con, f, (0.5, 0.25, 0.75))] for f in filled]
        steps.append({"op": "subtract_divide", "sub": [s[0] for s in stats], "div": [_nonzero(s[2] - s[1]) for s in stats]})
    return steps


def exact_quantiles(con: Any, expr: str, qs: Sequence[float], *, slack: float = 0.01) -> list[float | None]:
    """``quantile_cont(expr, q)`` over the train rows (missing values skipped), exactly, in bounded memory.

    DuckDB's exact quantiles hold every value of the column; here its t-digest (``approx_quantile``) brackets
    each needed rank within ``slack`` of the rows, one pass counts the values below and at the bracket's ends,
    and only the values strictly inside it are fetched and sorted. A bracket that misses the rank (it should
    not) is widened to the whole column."""
    n = con.execute(f"SELECT count({expr}) FROM train").fetchall()[0][0]
    if n == 0:
        return [None] * len(qs)
    out = []
    for q in qs:
        h = (n - 1) * q
        low, high = (_value_at_rank(con, expr, n, r, slack) for r in (int(np.floor(h)), int(np.ceil(h))))
        out.append(low + (h - np.floor(h)) * (high - low))
    return out


def _value_at_rank(con: Any, expr: str, n: int, rank: int, slack: float) -> float:
    while True:
        p = rank / max(n - 1, 1)
        lo, hi = con.execute(f"SELECT approx_quantile({expr}, [{max(0.0, p - slack)}, {min(1.0, p + slack)}]) "
                             "FROM train").fetchall()[0][0]
        if slack >= 1:
            lo, hi = con.execute(f"SELECT min({expr}), max({expr}) FROM train").fetchall()[0]
        bounds = [float(lo), float(hi)]  # bound as DOUBLE parameters: compared exactly
        below, at_lo, inside, at_hi = con.execute(
            f"SELECT count(*) FILTER ({expr} < $1), count(*) FILTER ({expr} = $1), "
            f"count(*) FILTER ({expr} > $1 AND {expr} < $2), count(*) FILTER ({expr} = $2) FROM train", bounds
        ).fetchall()[0]
        k = rank - below
        if 0 <= k < at_lo:
            return float(lo)
        if at_lo <= k < at_lo + inside:
            values = con.execute(f"SELECT {expr} FROM train WHERE {expr} > $1 AND {expr} < $2", bounds).fetchnumpy()
            return float(np.sort(next(iter(values.values())))[k - at_lo])
        if lo != hi and at_lo + inside <= k < at_lo + inside + at_hi:
            return float(hi)
        slack = 1.0  # the digest missed: the whole column


def _impute_value(con: Any, column: str, strategy: str) -> float:
    """SimpleImputer's statistic of one column on the train rows (ties of most_frequent: the smallest)."""
    c = _q(column)
    if strategy == "most_frequent":
        got = con.execute(f"SELECT {c} FROM train WHERE {c} IS NOT NULL GROUP BY {c} ORDER BY count(*) DESC, {c} LIMIT 1").fetchall()
    elif strategy == "median":
        got = [(exact_quantiles(con, c, (0.5,))[0],)]
    else:
        got = con.execute(f"SELECT avg({c}) FROM train").fetchall()
    return 0.0 if not got or got[0][0] is None else float(got[0][0])


def _row(con: Any, aggregates: Sequence[str]) -> list[float]:
    values = con.execute(f"SELECT {', '.join(aggregates)} FROM train").fetchall()[0]
    return [0.0 if v is None else float(v) for v in values]


def _constant(var: float, mean: float, n: int) -> bool:
    """StandardScaler's test for a constant column (a variance within float error of 0): its scale is 1."""
    return var <= n * _EPS * var + (n * mean * _EPS) ** 2


def _nonzero(scale: float) -> float:
    """scikit-learn's ``_handle_zeros_in_scale``: a range below 10 eps scales by 1."""
    return 1.0 if scale < 10 * _EPS else float(scale)


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.1f} MB" if nbytes >= 100_000 else f"{nbytes:,} bytes"
