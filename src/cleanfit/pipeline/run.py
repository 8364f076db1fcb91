"""From a CSV or Parquet table to a trusted, tracked model: the job behind ``cleanfit train``.

:func:`train_config` runs the whole discipline in order, and nothing reaches back up the chain:

1. read the table and check every column the config names;
2. split the rows, before anything looks at them;
3. audit the split for leakage (a critical finding stops here unless ``audit.fail_on = "never"``);
4. fit the preprocessing (impute, scale, encode) on the train rows only;
5. train (seeded :class:`~cleanfit.Batches`, :class:`~cleanfit.Trainer` with checkpoints and tracking);
6. score the test rows once, at the end; read the loss curve; write the report and a metrics JSON.

Steps 1-4 are :func:`cleanfit.pipeline.prepare.prepare`, steps 5-6 :func:`cleanfit.pipeline.fit.fit_prepared`;
this module claims the output folder and re-exports the names a caller needs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cleanfit.auditing.ooc_scan import memory_budget
from cleanfit.errors import CheckpointError
from cleanfit.pipeline.config import Config, load_config
from cleanfit.pipeline.diagnose import audit_lines
from cleanfit.pipeline.fit import TabularRun, fit_prepared, rank
from cleanfit.pipeline.run_folder import LOCK_FILE, RUN_FILE, read_run_file
from cleanfit.pipeline.prepare import AuditGateError, PreparedData, prepare, split_method
from cleanfit.training import distributed

__all__ = [
    "TabularRun", "AuditGateError", "PreparedData", "RUN_FILE", "prepare", "train_config", "train_prepared",
    "split_method", "rank", "run_identity", "claim_out",
]

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
    ``checkpoints/``, ``report.html``, ``metrics.json`` and the model (``model.json``, ``model.pt``). An
    ``out`` that holds another run is an error (nothing is overwritten); one that holds this run already
    trains it again in a numbered sibling (``out-2``, ``out-3``, ...) and says so, unless ``resume=True``
    continues it from its latest checkpoint.
    """
    with distributed.before_training():  # under torchrun: join first; a failed setup stops every rank at once
        config = _as_config(config, overrides)
        data = prepare(config)
        if not quiet and rank() == 0:  # the audit's warnings, before training starts, one line each
            if data.large is not None:
                print(data.large.summary(memory_budget(config.audit.memory, "audit.memory")), flush=True)
            for line in audit_lines(data.audit):
                print(line, flush=True)
        return train_prepared(data, out=out, resume=resume, quiet=quiet)


def train_prepared(
    data: PreparedData, *, out: str | Path | None = None, resume: bool = False, quiet: bool = False
) -> TabularRun:
    """Steps 5-6 of :func:`train_config` for data :func:`prepare` already split, audited and preprocessed."""
    config = data.config
    out = Path(out) if out is not None else Path.cwd() / "cleanfit-out" / Path(config.data.path).stem
    identity = run_identity(config, data.data_fingerprint)
    checkpoint_dir = Path(config.checkpoint.dir) if config.checkpoint.dir else out / "checkpoints"
    # Under torchrun rank 0's setup (the run folder, the MLflow store) may be slow: the other ranks wait for it at
    # distributed.ready() (CLEANFIT_SETUP_TIMEOUT), and an error it raises here reaches them (before_training).
    with distributed.before_training():
        if not resume and config.checkpoint.dir is None and _same_run(out, identity, checkpoint_dir):
            out, checkpoint_dir = _sibling(out, identity, quiet=quiet)
        claim_out(out, checkpoint_dir, identity, resume=resume)
        return fit_prepared(data, out=out.resolve(), checkpoint_dir=checkpoint_dir.resolve(), identity=identity,
                            resume=resume, quiet=quiet)


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
    elif out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
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


def _same_run(out: Path, identity: str, checkpoint_dir: Path) -> bool:
    """``out`` holds this very run, trained (or started) before: a rerun without ``--resume``."""
    has_checkpoints = checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir())
    record = read_run_file(out)
    return record.get("identity") == identity and (has_checkpoints or record.get("status") == "finished")


def _sibling(out: Path, identity: str, *, quiet: bool) -> tuple[Path, Path]:
    """The first free numbered sibling of ``out`` (``run`` -> ``run-2``, ``run-3``, ...), and says so.

    Free: missing, empty, or this run's folder just started by another rank of the same torchrun (a run
    file that says "running", no checkpoint yet), so every rank picks the same sibling.
    """
    number = 2
    while True:
        sibling = out.with_name(f"{out.name}-{number}")
        record = read_run_file(sibling)
        fresh = record.get("identity") == identity and record.get("status") == "running" and not any(
            (sibling / "checkpoints").glob("*"))
        if not sibling.exists() or (sibling.is_dir() and not any(sibling.iterdir())) or fresh:
            break
        number += 1
    if not quiet and rank() == 0:
        print(f"cleanfit: {out} already holds this run; training it again in {sibling} "
              f"(pass --resume to continue the run in {out} instead)", flush=True)
    return sibling, sibling / "checkpoints"


def _as_config(config: str | Path | Mapping[str, Any] | Config, overrides: Sequence[str]) -> Config:
    if isinstance(config, Config):
        if not overrides:
            return config
        updated = load_config(config.model_dump(mode="json"), overrides)
        updated._base_dir = config._base_dir
        return updated
    return load_config(config, overrides)
