"""The audit of a Parquet table by path, in memory when it fits the budget and out of core through DuckDB when not.

    report = cleanfit.audit("events/*.parquet", "label", time="ts", memory="2GB")

The split is the row-number split of :mod:`cleanfit.data.rowsplit` in both cases, so the audited split does not
depend on the budget. Out of core, one streaming pass (:mod:`~cleanfit.auditing.ooc_load`) writes a compact table
to a DuckDB database in a temporary folder (DuckDB spills to that folder past its memory limit, a quarter of the
budget); the exact checks are SQL over it (:mod:`~cleanfit.auditing.ooc_checks`), and the model-based checks
(``near-duplicates``, ``target-leakage``, ``identifier``; also ``group`` without a group column, split-shift's
category values and regression targets, label-order of a regression target) run in memory on a uniform sample of
rows whose size the report states. ``preprocessing`` compares the transformers' statistics with DuckDB's over the
train rows and all rows (:mod:`~cleanfit.auditing.ooc_preprocessing`); ``impact=True`` is measured on the row sample
(:mod:`~cleanfit.auditing.ooc_impact`). Nothing is written until every pass has succeeded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cleanfit.auditing import distribution, ooc_checks, ooc_impact, ooc_preprocessing
from cleanfit.auditing.duplicates import check_near_duplicates
from cleanfit.auditing.groups import check_group
from cleanfit.auditing.inputs import AuditData, prepare
from cleanfit.auditing.ooc_load import Loaded, stream
from cleanfit.auditing.ooc_scan import ParquetTable, Progress, memory_budget, numeric_columns, open_table
from cleanfit.auditing.report import AuditReport
from cleanfit.auditing.target import check_identifier, check_target_leakage
from cleanfit.auditing.text import check_text_columns
from cleanfit.data.rowsplit import RowSplit, split_rows, time_bounds
from cleanfit.data.splits import PART_NAMES, Splits
from cleanfit.data.tables import infer_task, parse_time
from cleanfit.errors import DataError
from cleanfit.findings import Finding

SAMPLE = 100_000  # rows the model-based checks see out of core
_SAMPLED = ("near-duplicates", "target-leakage", "identifier", "text-columns")


def audit_path(path: Any, target: Any, split: Any, *, time: str | None, groups: str | None, requested: tuple[str, ...],
               seed: int, memory: Any, sample: int, progress: Progress | None, in_memory: Callable[..., AuditReport],
               transformers: Sequence[Any] = (), impact: bool = False) -> AuditReport:
    """Audit the Parquet table at ``path`` (see the module docstring); ``in_memory`` is ``cleanfit.audit``."""
    if not isinstance(target, str):
        raise DataError(f"audit({str(path)!r}, y=...): with a table path, y is the name of the target column, got {type(target).__name__}")
    for name, value in (("time", time), ("groups", groups)):
        if value is not None and not isinstance(value, str):
            raise DataError(f"audit({str(path)!r}, {name}=...): with a table path, {name} is a column name")
    if split is not None and not isinstance(split, RowSplit):
        raise DataError(f"audit({str(path)!r}, splits=...): a table path is split by row number; pass "
                        "RowSplit(by=..., test=..., val=..., seed=...) or None for the default split")
    table = open_table(path, [c for c in (target, time, groups) if c])
    extra = {"transformers": transformers, "impact": impact}
    if table.nbytes <= memory_budget(memory):
        return _audit_in_memory(table, target, split, time=time, groups=groups, requested=requested, seed=seed,
                                audit=in_memory, **extra)
    return audit_out_of_core(table, target, split, time=time, groups=groups, requested=requested, seed=seed,
                             memory=memory_budget(memory), sample=sample, progress=progress, **extra)


def _audit_in_memory(table: ParquetTable, target: str, split: RowSplit | None, *, time: str | None, groups: str | None,
                     requested: tuple[str, ...], seed: int, audit: Callable[..., AuditReport], **extra: Any) -> AuditReport:
    import pyarrow.parquet as pq

    try:
        frame = pq.ParquetDataset(table.paths).read(columns=table.columns).to_pandas().reset_index(drop=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt page, a bad codec: the file's fault
        raise DataError(f"{table.name}: cannot read the table ({exc}); rewrite the broken file or remove it") from exc
    y = frame[target]
    if y.isna().any():
        raise DataError(f"{table.name}: the target column {target!r} has {int(y.isna().sum()):,} empty rows; drop them or fill them first")
    spec = (split or RowSplit("auto", seed=seed)).resolved(infer_task(y), time=time, groups=groups)
    times = None
    if time is not None:
        parsed, _ = parse_time(frame[time], f"{table.name}: time column {time!r}")
        times = parsed.view(np.int64) if parsed.dtype.kind in "Mm" else parsed
    part = split_rows(spec, len(frame), y=y.to_numpy(), groups=frame[groups] if groups else None, time=times)
    splits = splits_of(part, spec)
    return audit(frame.drop(columns=[target]), y.to_numpy(), splits, time=time, groups=groups, checks=list(requested),
                 seed=seed, **extra)


def splits_of(part: np.ndarray, spec: RowSplit) -> Splits:
    """A :class:`Splits` of the rows of each part, its method ``row-<by>``."""
    made = Splits(*(np.flatnonzero(part == p) for p in (0, 1, 2)))
    made.by = f"row-{spec.by}"
    return made


def audit_out_of_core(table: ParquetTable, target: str, split: RowSplit | None, *, time: str | None, groups: str | None,
                      requested: tuple[str, ...], seed: int, memory: int, sample: int = SAMPLE,
                      progress: Progress | None = None, drop: Sequence[str] = (), transformers: Sequence[Any] = (),
                      impact: bool = False) -> AuditReport:
    """The out-of-core audit of ``table`` (a DuckDB database in a temporary folder, removed afterwards); the
    features are every column but the target, time, group and ``drop`` ones. ``transformers`` are verified by
    ``preprocessing`` (:mod:`~cleanfit.auditing.ooc_preprocessing`); ``impact`` is measured on the row sample."""
    import duckdb

    started = _time.perf_counter()
    features = [c for c in table.columns if c not in {target, time, groups, *drop}]
    stored = ooc_preprocessing.stored_columns(transformers, features, numeric_columns(table)) if "preprocessing" in requested else []
    with tempfile.TemporaryDirectory(prefix="cleanfit-audit-") as tmp:
        con = duckdb.connect(os.path.join(tmp, "audit.duckdb"))
        try:
            con.execute(f"SET memory_limit = '{max(64 * 2**20, memory // 4)}B'")
            con.execute(f"SET temp_directory = '{tmp}'")
            con.execute("SET preserve_insertion_order = false")
            asked = split or RowSplit("auto", seed=seed)
            asked.resolved("regression", time=time, groups=groups)  # a gap without a time split: refused before the pass
            loaded = stream(con, table, features=features, target=target, time=time, group=groups,
                            spec=_provisional(asked, time, groups), sample=sample, progress=progress, keep=stored)
            spec = asked.resolved(loaded.task, time=time, groups=groups)
            began = _time.perf_counter()
            _assign_parts(con, spec, loaded.n)
            _step(progress, f"split by row number ({spec.by})", began)
            checks = Checks(features, requested, tuple(transformers), stored, impact)
            return _run_checks(con, loaded, spec, checks, time=time, groups=groups, seed=seed, started=started,
                               progress=progress)
        finally:
            con.close()


def _provisional(asked: RowSplit, time: str | None, groups: str | None) -> RowSplit:
    """The split the pass computes before the task is known: ``asked`` with ``auto`` read as group or random
    (a stratified or time split is ranked afterwards from the same row keys)."""
    if asked.by != "auto":
        return asked
    return RowSplit("group" if groups and not time else "random", test=asked.test, val=asked.val, seed=asked.seed)


def _assign_parts(con: Any, spec: RowSplit, n: int) -> None:
    """The table ``audit``: ``rows`` with every row's part (stratify and time ranked here, in SQL)."""
    if spec.by in ("random", "group"):
        con.execute("ALTER TABLE rows RENAME TO audit")
        return
    if spec.by == "time":  # rowsplit.time_bounds: the gap rows before each later part are in none (-1)
        train_end, val_start, val_end, test_start = time_bounds(n, spec)
        con.execute(f"""CREATE TABLE audit AS SELECT * EXCLUDE (part, rk),
            (CASE WHEN rk < {train_end} THEN 0 WHEN rk >= {test_start} THEN 2
                  WHEN rk >= {val_start} AND rk < {val_end} THEN 1 ELSE -1 END)::TINYINT AS part
            FROM (SELECT *, row_number() OVER (ORDER BY t, row) - 1 AS rk FROM rows)""")
        con.execute("DROP TABLE rows")
        return
    # rowsplit.class_counts, per class: n_test = floor(test * n + 0.5), n_val = min(rest, floor(val * n + 0.5))
    size = "count(*) OVER (PARTITION BY y)"
    n_test = f"floor({spec.test!r}::DOUBLE * {size} + 0.5)::BIGINT"  # doubles, as NumPy: the same roundings
    rank = "row_number() OVER (PARTITION BY y ORDER BY skey, row) - 1"
    n_val = f"least({size} - {n_test}, floor({spec.val!r}::DOUBLE * {size} + 0.5)::BIGINT)"
    limits = f"{size} - {n_test} - {n_val} AS n_train, {n_val} AS n_val"
    con.execute(f"""CREATE TABLE audit AS SELECT * EXCLUDE (part, rk, n_train, n_val),
        (CASE WHEN rk < n_train THEN 0 WHEN rk < n_train + n_val THEN 1 ELSE 2 END)::TINYINT AS part
        FROM (SELECT *, {rank} AS rk, {limits} FROM rows)""")
    con.execute("DROP TABLE rows")


def split_fingerprint(con: Any, sizes: list[int]) -> str:
    """:attr:`Splits.fingerprint` of the parts in ``audit``, streamed from DuckDB (never all rows in memory)."""
    digest = hashlib.sha256()
    cursor = con.cursor()  # its own connection: a result a check left unfetched on ``con`` does not block it
    for p, name in enumerate(PART_NAMES):
        digest.update(f"{name}:{sizes[p]};".encode())
        reader = cursor.sql(f"SELECT row FROM audit WHERE part = {p} ORDER BY row").to_arrow_reader(1 << 20)
        for batch in reader:
            digest.update(batch.column(0).to_numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def _sample_data(con: Any, loaded: Loaded, spec: RowSplit, requested: tuple[str, ...], *, time: str | None,
                 groups: str | None, seed: int) -> AuditData:
    """The in-memory AuditData of the sampled rows, with their parts."""
    parts = np.array([p for (p,) in con.execute("SELECT part FROM audit WHERE sampled ORDER BY row").fetchall()], dtype=np.int8)
    sample_split = splits_of(parts, spec)
    data = prepare(loaded.sample, loaded.sample_y, sample_split, time=time, groups=groups, transformers=(),
                   seed=seed, requested=requested)
    data.task = loaded.task  # the task of the whole table, not of the sample
    return data


def _step(progress: Any, what: str, began: float) -> None:
    """Tell a progress reporter that can hear about steps (``ConsoleProgress.step``) that one is done."""
    if hasattr(progress, "step"):
        progress.step(what, _time.perf_counter() - began)


@dataclass(frozen=True)
class Checks:
    """What the checks are asked to look at: the feature columns, the check ids, the transformers to verify (their
    inputs stored as ``p0, p1, ...``: ``stored``) and whether to measure impact."""

    features: list[str]
    requested: tuple[str, ...]
    transformers: tuple[Any, ...] = ()
    stored: list[str] = field(default_factory=list)
    impact: bool = False


def _runs(con: Any, loaded: Loaded, spec: RowSplit, checks: Checks, data: AuditData, sizes: list[int], *,
          time: str | None, groups: str | None) -> dict[str, Callable[[], list[Finding]]]:
    """Each check id's run: SQL over every row, or the in-memory check on the row sample ``data``."""
    classes = loaded.task == "classification"
    drift = spec.by == "time" or (time is not None and con.execute(
        "SELECT min(t) FILTER (part > 0) >= max(t) FILTER (part = 0) FROM audit").fetchall()[0][0] is True)
    return {
        "duplicates": lambda: ooc_checks.duplicates(con, sizes, data, True) if checks.features else [],
        "near-duplicates": lambda: check_near_duplicates(data),
        "target-leakage": lambda: check_target_leakage(data),
        "identifier": lambda: check_identifier(data),
        "text-columns": lambda: check_text_columns(data),
        "temporal": lambda: ooc_checks.temporal_check(con, sizes, data),
        "group": lambda: ooc_checks.group(con, groups) if groups else check_group(data),
        "preprocessing": lambda: ooc_preprocessing.check(con, checks.transformers, checks.features, checks.stored, sizes),
        "label-order": lambda: ((ooc_checks.label_order(con, loaded.order, loaded.n, time is not None) if classes
                                 else distribution.label_blocks(data)) + ooc_checks.time_order(loaded.order, time)),
        "split-shift": lambda: ((ooc_checks.label_shift(con, sizes, drift) if classes else distribution.label_shift(data))
                                + distribution.unseen_categories(data)),
    }


def _run_checks(con: Any, loaded: Loaded, spec: RowSplit, checks: Checks, *, time: str | None, groups: str | None,
                seed: int, started: float, progress: Any = None) -> AuditReport:
    sizes = ooc_checks.part_sizes(con)
    if not sizes[0]:
        raise DataError(f"the row split by={spec.by!r} left no train rows; lower test/val")
    data = _sample_data(con, loaded, spec, checks.requested, time=time, groups=groups, seed=seed)
    data.cache["impact"] = checks.impact  # the sampled checks keep the rows impact compares
    runs = _runs(con, loaded, spec, checks, data, sizes, time=time, groups=groups)
    findings: list[Finding] = []
    ran, skipped = [], {}
    for name in checks.requested:
        if name == "temporal" and time is None:
            skipped[name] = "needs time"
        elif name == "preprocessing" and not checks.transformers:
            skipped[name] = "no transformers given"
        else:
            began = _time.perf_counter()
            findings += runs[name]()
            ran.append(name)
            on_sample = name in _SAMPLED or (name == "group" and not groups)
            _step(progress, f"{name} {'on the row sample' if on_sample else 'over every row'}", began)
    if checks.impact:
        began = _time.perf_counter()
        ooc_impact.measure(con, data, findings, n_rows=loaded.n, groups=groups)
        _step(progress, "impact on the row sample", began)
    sampled = [c for c in ran if c in _SAMPLED or (c == "group" and not groups)]
    return AuditReport(findings, checks=ran, skipped=skipped, n_rows=loaded.n, n_features=len(checks.features),
                       seconds=_time.perf_counter() - started, task=loaded.task,
                       split={"method": f"row-{spec.by}", "fingerprint": split_fingerprint(con, sizes)},
                       sample={"rows": data.n, "checks": sampled, "out_of_core": True})
