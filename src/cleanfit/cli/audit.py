"""``cleanfit audit DATA --target COL ...``: audit a CSV/Parquet file for leakage, as a CI gate.

Exit codes: 0 the gate passed, 1 it failed (``--fail-on``), 2 bad input (raised as DataError).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import pandas as pd

from cleanfit._util.args import SEED_LIMIT, is_seed
from cleanfit._util.columns import did_you_mean, shown
from cleanfit._util.files import write_atomic
from cleanfit.auditing import audit as run_audit
from cleanfit.auditing.ooc_scan import console_progress, is_parquet_path, memory_budget, open_table
from cleanfit.data.rowsplit import RowSplit
from cleanfit.data.splits import split
from cleanfit.data.tables import infer_task, read_table
from cleanfit.errors import DataError

_PART_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _column(frame: pd.DataFrame, name: str | None, option: str, path: Path) -> str | None:
    if name is None or name in frame.columns:
        return name
    near = did_you_mean(name, frame.columns)
    raise DataError(f"{option} {name!r}: no such column in {path}{'; ' + near if near else ''} "
                    f"(columns: {shown(frame.columns, 15)})")


def _has_features(columns: Any, data: Path, target: str, *others: str | None) -> None:
    """A DataError when DATA holds no column to audit besides the target (and --split-col): a --time or --group
    column alone is still checked (temporal, group)."""
    named = {target, *(o for o in others if o is not None)}
    if not [c for c in columns if c not in named]:
        raise DataError(f"{data} has no feature columns besides --target {target!r}"
                        f"{' and ' + ', '.join(sorted(map(repr, named - {target}))) if len(named) > 1 else ''}: "
                        "there is nothing to audit; give the file with its feature columns")


def _write(path: Path, option: str, text: str) -> None:
    """Write an output file (atomically), creating its folder; an unwritable path is the user's to fix."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
    except OSError as exc:
        raise DataError(f"{option} {str(path)!r}: cannot write the file ({exc.strerror or exc}); give a writable path") from exc


class _LabelledParts:
    """Train/val/test row indices read from a column of part names."""

    by = "labels"  # what the audit reports as the split's method (as cf.Splits.from_labels does)

    def __init__(self, labels: pd.Series, column: str) -> None:
        normal = labels.astype(str).str.strip().str.lower().map(_PART_NAMES)
        bad = labels[normal.isna()]
        if len(bad):
            raise DataError(
                f"--split-col {column!r}: {len(bad)} rows hold {bad.astype(str).unique()[:5].tolist()}, not "
                f"one of 'train', 'val', 'test'"
            )
        self.train = np.flatnonzero(normal.to_numpy() == "train")
        self.val = np.flatnonzero(normal.to_numpy() == "val")
        self.test = np.flatnonzero(normal.to_numpy() == "test")
        if not (self.val.size or self.test.size):
            raise DataError(f"--split-col {column!r}: no row is labelled 'val' or 'test', so there are no held-out "
                            "rows to compare with train; label some rows 'test', or drop --split-col to let the "
                            "command split (--test 0.2)")


def _make_split(frame: pd.DataFrame, y: pd.Series, *, by: str | None, test: float, val: float,
                time: str | None, group: str | None, seed: int) -> Any:
    classification = infer_task(y) == "classification"  # the one task rule: `cleanfit train` splits by it too
    if by is None:
        by = "time" if time else "group" if group else "stratify" if classification else "random"
    for needed, column, option in (("group", group, "--group"), ("time", time, "--time")):
        if by == needed and column is None:
            raise DataError(f"--by {needed} needs {option} COLUMN (the column to split by), or --split-col for a split you already have")
    try:
        return split(frame, test=test, val=val, by=by, y=y.to_numpy(), groups=group, time=time, seed=seed)
    except DataError as exc:  # speak the command line's language: the options, not split()'s arguments
        text = str(exc)
        for argument, option in (("time", f"--time {time!r}"), ("groups", f"--group {group!r}"),
                                 ("y", f"--target {y.name!r}"), ("test", "--test"), ("val", "--val")):
            text = text.replace(f"split({argument}=...)", option)
        raise DataError(text) from exc


@click.command("audit")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--target", required=True, help="The label column.")
@click.option("--time", "time_col", default=None, help="Time column (for the temporal checks and by=time).")
@click.option("--group", "group_col", default=None, help="Entity column (patient, user, ...): no entity in two parts.")
@click.option("--split-col", default=None, help="Column of train/val/test labels: audit this existing split.")
@click.option("--test", default=0.2, show_default=True, type=float, help="Test fraction when the command makes the split.")
@click.option("--val", default=0.0, show_default=True, type=float, help="Validation fraction when the command makes the split.")
@click.option("--by", type=click.Choice(["random", "stratify", "group", "time"]), default=None,
              help="How to split [default: time with --time, group with --group, else stratify/random].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the split and the row samples.")
@click.option("--checks", default="all", show_default=True, help="Comma-separated check ids, or 'all'.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Write the findings as JSON.")
@click.option("--html", "html_path", type=click.Path(path_type=Path), default=None, help="Write an HTML report.")
@click.option("--impact", is_flag=True, default=False,
              help="Measure what each critical or warning finding is worth: a quick model's test score with and without it.")
@click.option("--fail-on", type=click.Choice(["critical", "warning", "never"]), default="critical", show_default=True,
              help="Exit 1 when a finding is at least this severe.")
@click.option("--memory", default="auto", show_default=True,
              help="Memory budget: a Parquet table larger than it is audited out of core ('auto', '2GB', bytes).")
@click.pass_context
def audit(ctx: click.Context, data: Path, target: str, time_col: str | None, group_col: str | None,
          split_col: str | None, test: float, val: float, by: str | None, seed: int, checks: str,
          json_path: Path | None, html_path: Path | None, impact: bool, fail_on: str, memory: str) -> int:
    """Audit DATA (.csv or .parquet) for leakage; exit 1 when the --fail-on gate fails.

    A Parquet table larger than --memory is audited out of core: split by row number, the exact checks in
    DuckDB, the model-based ones on a row sample. A folder of Parquet files or a glob is split by row number
    too (in memory when it fits).
    """
    wanted = "all" if checks.strip() == "all" else [c.strip() for c in checks.split(",") if c.strip()]
    budget = memory_budget(memory, "--memory")
    if not is_seed(seed):
        raise DataError(f"--seed {seed}: the seed must be an int in [0, {SEED_LIMIT}), e.g. --seed 0 (the default)")
    if split_col is None and test == 0 and val == 0:
        raise DataError(f"--test {test:g} --val {val:g} holds out no rows, so the audit would compare train with "
                        "nothing and pass with nothing checked; give --test 0.2 (the default) or --split-col COLUMN")
    if is_parquet_path(data) and (not data.is_file() or open_table(data, [target]).nbytes > budget):
        report = _out_of_core(data, target, time_col, group_col, split_col, test, val, by, seed, wanted, budget, impact)
    else:
        report = _in_memory(data, target, time_col, group_col, split_col, test, val, by, seed, wanted, impact)
    click.echo(str(report))
    if json_path is not None:
        payload = {"data": str(data), "target": target, "fail_on": fail_on, "gate_failed": report.failed(fail_on), **report.to_dict()}
        _write(json_path, "--json", json.dumps(payload, indent=2) + "\n")
    if html_path is not None:
        _write(html_path, "--html", report.to_html())
    code = 1 if report.failed(fail_on) else 0
    ctx.exit(code)
    return code


def _out_of_core(data: Path, target: str, time_col: str | None, group_col: str | None, split_col: str | None,
                 test: float, val: float, by: str | None, seed: int, wanted: Any, budget: int, impact: bool) -> Any:
    """The audit of a Parquet table by path (out of core over the budget, with progress on stderr)."""
    if split_col is not None:
        raise DataError(f"--split-col: {data} is a Parquet folder, a glob or a table larger than --memory, which is "
                        "split by row number; give one Parquet file that fits --memory to audit an existing split column")
    for name, option in ((time_col, "--time"), (group_col, "--group")):
        if name is not None and name == target:
            raise DataError(f"{option} {name!r} is also the --target column; give {option} a different column of {data}")
    for needed, column, option in (("group", group_col, "--group"), ("time", time_col, "--time")):
        if by == needed and column is None:
            raise DataError(f"--by {needed} needs {option} COLUMN (the column to split by)")
    _has_features(open_table(data, [target]).columns, data, target)
    spec = RowSplit(by or "auto", test=test, val=val, seed=seed)
    progress = console_progress(f"audit of {data}", lambda line: click.echo(line, err=True))
    try:
        return run_audit(str(data), target, spec, time=time_col, groups=group_col, checks=wanted, seed=seed,
                         memory=budget, progress=progress, impact=impact)
    except DataError as exc:  # the command line's words for what cf.audit says of its arguments
        raise DataError(str(exc).replace("audit(y=...)", f"--target {target!r} in {data}")) from exc


def _in_memory(data: Path, target: str, time_col: str | None, group_col: str | None, split_col: str | None,
               test: float, val: float, by: str | None, seed: int, wanted: Any, impact: bool) -> Any:
    frame = read_table(data)
    for name, option in ((target, "--target"), (time_col, "--time"), (group_col, "--group"), (split_col, "--split-col")):
        _column(frame, name, option, data)
    for name, option in ((time_col, "--time"), (group_col, "--group"), (split_col, "--split-col")):
        if name == target:
            raise DataError(f"{option} {name!r} is also the --target column; give {option} a different column of {data}")
    _has_features(frame.columns, data, target, split_col)
    y = frame[target]
    if y.isna().all() or y.nunique(dropna=True) < 2:
        raise DataError(f"--target {target!r} in {data} has a single value: there is nothing to predict; pick the label column")
    if y.isna().any():
        raise DataError(f"--target {target!r} in {data} has {int(y.isna().sum())} empty rows; drop them or fill them first")
    infinite = np.flatnonzero(np.isinf(y.to_numpy())) if y.dtype.kind == "f" else np.array([], dtype=np.int64)
    if infinite.size:
        raise DataError(f"--target {target!r} in {data} holds {infinite.size} infinite value(s) (data rows "
                        f"{', '.join(map(str, infinite[:5].tolist()))}{', ...' if infinite.size > 5 else ''}, counting "
                        "from 0): no model can score them; drop those rows or replace the values")
    if split_col is not None:
        parts: Any = _LabelledParts(frame[split_col], split_col)
        features = frame.drop(columns=[target, split_col])
    else:
        parts = _make_split(frame, y, by=by, test=test, val=val, time=time_col, group=group_col, seed=seed)
        features = frame.drop(columns=[target])
    return run_audit(features, y.to_numpy(), parts, time=time_col, groups=group_col, checks=wanted, impact=impact,
                     seed=seed)
