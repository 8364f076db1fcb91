"""From a CSV or Parquet table to a trusted, tracked model: the job behind ``cleanfit train``.

:func:`train_config` runs the whole discipline in order, and nothing reaches back up the chain:

1. read the table and check every column the config names;
2. split the rows, before anything looks at them;
3. audit the split for leakage (a critical finding stops here unless ``audit.fail_on = "never"``);
4. fit the preprocessing (impute, scale, encode) on the train rows only;
5. train (seeded :class:`~cleanfit.Batches`, :class:`~cleanfit.Trainer` with checkpoints and tracking);
6. score the test rows once, at the end; read the loss curve; write the report and a metrics JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cleanfit.data.tables import parse_time, read_table
from cleanfit.errors import CheckpointError, DataError
from cleanfit.findings import Finding
from cleanfit.pipeline.config import Config, load_config
from cleanfit.pipeline.prepare import (
    build_preprocessor,
    check_columns,
    column_kinds,
    encode_target,
    feature_frame,
)

__all__ = ["TabularRun", "AuditGateError", "PreparedData", "prepare", "train_config", "train_prepared", "split_method"]

RUN_FILE = "run.json"
MIN_TRAIN_ROWS = 10  # fewer cannot be trained on, cross-validated by the audit, or trusted


class AuditGateError(DataError):
    """The leakage audit found what ``audit.fail_on`` forbids; training did not start.

    ``report`` holds the :class:`~cleanfit.AuditReport`. The command line exits with code 1.
    """

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class PreparedData:
    """A table after steps 1-4: split, audited, preprocessed on train only, ready for training."""

    config: Config
    task: str
    frame: pd.DataFrame
    features: pd.DataFrame
    splits: Any
    audit: Any
    preprocessor: Any
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]  # part -> (X float32, y)
    classes: list[Any] | None
    target_scale: tuple[float, float]  # regression: (mean, std) of the train targets; else (0, 1)
    data_fingerprint: str

    @property
    def n_features(self) -> int:
        return int(self.arrays["train"][0].shape[1])

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.classes is not None else 1


@dataclass
class TabularRun:
    """The result of :func:`train_config`.

    ``metrics`` holds ``val_loss``, ``test_loss`` and ``val_<m>``/``test_<m>`` for each metric of the
    task (classification: accuracy, auc; regression: rmse, r2 in the target's units).
    """

    config: Config
    task: str
    metrics: dict[str, float]
    out: Path
    run_id: str | None
    history: Any
    model: Any
    audit: Any
    diagnosis: list[Finding] = field(default_factory=list)
    splits: Any = None
    report_path: Path | None = None
    metrics_path: Path | None = None
    checkpoint_dir: Path | None = None
    tracking_uri: str | None = None
    unlogged_path: Path | None = None  # where tracking put what the store did not take, if it failed

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-friendly values (what ``cleanfit train --json`` writes)."""
        return {
            "task": self.task,
            "metrics": {k: _finite_or_none(v) for k, v in self.metrics.items()},
            "split": {"method": split_method(self.config, self.task), "fingerprint": self.splits.fingerprint},
            "audit": {"passed": bool(self.audit.passed), "findings": [f.to_dict() for f in self.audit.findings]},
            "diagnosis": [f.to_dict() for f in self.diagnosis],
            "epochs": len(self.history.epochs),
            "out": str(self.out),
            "report": None if self.report_path is None else str(self.report_path),
            "checkpoints": None if self.checkpoint_dir is None else str(self.checkpoint_dir),
            "mlflow": {
                "run_id": self.run_id,
                "tracking_uri": self.tracking_uri,
                "unlogged": None if self.unlogged_path is None else str(self.unlogged_path),
            },
            "config": self.config.model_dump(mode="json"),
        }


def split_method(config: Config, task: str) -> str:
    """The ``split.by`` in effect: ``"auto"`` is time, else group, else stratify (classification) or random."""
    if config.split.by != "auto":
        return config.split.by
    if config.data.time is not None:
        return "time"
    if config.data.group is not None:
        return "group"
    return "stratify" if task == "classification" else "random"


def prepare(config: Config, *, run_audit: bool = True) -> PreparedData:
    """Steps 1-4: read, split, audit (and enforce the gate), fit-on-train preprocessing.

    Raises :class:`~cleanfit.errors.DataError` for a table that cannot be used, and
    :class:`AuditGateError` when the audit finds what ``audit.fail_on`` forbids.
    """
    from cleanfit.auditing import audit
    from cleanfit.data.splits import split

    frame = read_table(config.data.path, field="data.path")
    check_columns(frame, config)
    target = encode_target(frame, config)
    features = feature_frame(frame, config)

    method = split_method(config, target.task)
    time_column = None if config.data.time is None else frame[config.data.time]
    time = None if time_column is None else parse_time(time_column, f"data.time = {config.data.time!r}")[0]
    groups = None if config.data.group is None else frame[config.data.group].to_numpy()
    splits = split(
        len(frame),
        test=config.split.test,
        val=config.split.val,
        by=method,
        y=target.values if method == "stratify" else None,
        groups=groups,
        time=time,
        gap=config.split.gap,
        seed=config.split.seed,
    )
    if len(splits.train) < MIN_TRAIN_ROWS or len(splits.test) == 0:
        raise DataError(
            f"{Path(config.data.path).name}: {len(frame)} rows leave {len(splits.train)} to train on and "
            f"{len(splits.test)} to test on; a run needs at least {MIN_TRAIN_ROWS} train rows and one test row: "
            f"add rows or change split.test/split.val"
        )
    if config.train.early_stopping and len(splits.val) == 0:
        raise DataError("train.early_stopping needs validation rows but the split has none; raise split.val")

    # the audit reads the time column by the same rule (parse_time), and keeps its time zone to print it
    report = audit(features, frame[config.data.target], splits, time=time_column, groups=groups) if run_audit else None
    if report is not None and report.failed(config.audit.fail_on):
        worst = [f for f in report.findings if f.severity == "critical"] or report.findings
        raise AuditGateError(
            f"the leakage audit of {Path(config.data.path).name} failed ({_counts(report)}): "
            f"{worst[0].check}: {worst[0].message} Fix the data, or set audit.fail_on = \"never\" to train anyway",
            report,
        )

    numeric, text = column_kinds(features)
    preprocessor = build_preprocessor(numeric, text, config.preprocess)
    parts = splits.fit_transform(preprocessor, features)
    if report is not None:  # prove the preprocessing saw the train rows only
        proof = audit(features, frame[config.data.target], splits, transformers=[preprocessor], checks=["preprocessing"])
        report = _merge_reports(report, proof)
    y = target.values
    mean, std = 0.0, 1.0
    if target.task == "regression":
        train_y = y[splits.train]
        mean, std = float(train_y.mean()), float(train_y.std()) or 1.0
    arrays = {
        name: (np.ascontiguousarray(X, dtype=np.float32), y[rows])
        for name, X, rows in zip(("train", "val", "test"), parts, (splits.train, splits.val, splits.test))
    }
    return PreparedData(
        config=config,
        task=target.task,
        frame=frame,
        features=features,
        splits=splits,
        audit=report,
        preprocessor=preprocessor,
        arrays=arrays,
        classes=target.classes,
        target_scale=(mean, std),
        data_fingerprint=_frame_fingerprint(frame),
    )


def train_config(
    config: str | Path | Mapping[str, Any] | Config,
    *,
    out: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = False,
    quiet: bool = False,
) -> TabularRun:
    """Train the model a config describes, with the whole discipline; see the module docstring.

    ``out`` (default ``./cleanfit-out/<data file stem>``) receives ``run.json`` (the run's identity),
    ``checkpoints/``, ``report.html`` and ``metrics.json``. An ``out`` that holds another run is an
    error (nothing is overwritten); one that holds this run's checkpoints needs ``resume=True``.
    """
    config = _as_config(config, overrides)
    return train_prepared(prepare(config), out=out, resume=resume, quiet=quiet)


def train_prepared(
    data: PreparedData, *, out: str | Path | None = None, resume: bool = False, quiet: bool = False
) -> TabularRun:
    """Steps 5-6 of :func:`train_config` for data :func:`prepare` already split, audited and preprocessed."""
    from cleanfit.pipeline.fit import fit_prepared

    config = data.config
    out = Path(out) if out is not None else Path.cwd() / "cleanfit-out" / Path(config.data.path).stem
    identity = run_identity(config, data.data_fingerprint)
    checkpoint_dir = Path(config.checkpoint.dir) if config.checkpoint.dir else out / "checkpoints"
    claim_out(out, checkpoint_dir, identity, resume=resume)
    return fit_prepared(
        data, out=out.resolve(), checkpoint_dir=checkpoint_dir.resolve(), identity=identity, resume=resume, quiet=quiet
    )


def run_identity(config: Config, data_fingerprint: str) -> str:
    """What makes two runs the same run: the config (less where it is written) and the data."""
    return hashlib.sha256(f"{config.identity()}:{data_fingerprint}".encode()).hexdigest()[:16]


def claim_out(out: Path, checkpoint_dir: Path, identity: str, *, resume: bool) -> None:
    """Refuse an output directory that holds another run, or this run's checkpoints without ``resume``.

    Only reads; the run file is written later, by rank 0, once training starts.
    """
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"--out {out} is a file; pass a folder")
    run_file = out / RUN_FILE
    previous: str | None = None
    if run_file.exists():
        try:
            previous = json.loads(run_file.read_text())["identity"]
        except (OSError, ValueError, KeyError, TypeError):
            previous = "unreadable"
    elif out.is_dir() and any(out.iterdir()):
        raise CheckpointError(f"--out {out} already holds files that are not a cleanfit run; pass an empty or new folder")
    has_checkpoints = checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir())
    if previous is not None and previous != identity:
        raise CheckpointError(
            f"{out} holds another run (run {previous}, this is run {identity}: the config or the data "
            f"differ); pass --out NEW_DIR, or delete {out} to replace it"
        )
    if previous is None and has_checkpoints:
        raise CheckpointError(
            f"{checkpoint_dir} holds checkpoints of an unknown run; pass --out NEW_DIR or set checkpoint.dir "
            f"to an empty folder"
        )
    if has_checkpoints and not resume:
        raise CheckpointError(
            f"{out} already holds checkpoints of this run; pass --resume to continue it, or delete "
            f"{checkpoint_dir} to train it again from the start"
        )


def _as_config(config: str | Path | Mapping[str, Any] | Config, overrides: Sequence[str]) -> Config:
    if isinstance(config, Config):
        if not overrides:
            return config
        updated = load_config(config.model_dump(mode="json"), overrides)
        updated._base_dir = config._base_dir
        return updated
    return load_config(config, overrides)


def _frame_fingerprint(frame: pd.DataFrame) -> str:
    from cleanfit.tracking.environment import data_fingerprint

    return data_fingerprint(frame)


def _merge_reports(first: Any, second: Any) -> Any:
    from cleanfit.auditing import AuditReport

    return AuditReport(
        [*first.findings, *second.findings],
        checks=[*first.checks, *(c for c in second.checks if c not in first.checks)],
        skipped={k: v for k, v in {**first.skipped, **second.skipped}.items() if k not in second.checks},
        n_rows=first.n_rows,
        n_features=first.n_features,
        seconds=first.seconds + second.seconds,
        task=first.task,
        split=first.split,
    )


def _counts(report: Any) -> str:
    counts: dict[str, int] = {}
    for finding in report.findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    return ", ".join(f"{n} {severity}" for severity, n in counts.items()) or "no findings"


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None
