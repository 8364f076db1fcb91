"""Steps 5-6 of a tabular run: train, score the test rows once, diagnose, track and report.

Under torchrun every rank trains (the Trainer shards the batches and wraps the model in DDP);
only rank 0 writes files, talks to MLflow and prints.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cleanfit._util.files import DiskFull, disk_full_message
from cleanfit._util.files import write_json as _write_json
from cleanfit._util.locks import release
from cleanfit._util.ranks import rank, world
from cleanfit.data.batches import Batches
from cleanfit.errors import ConfigError
from cleanfit.findings import Finding
from cleanfit.pipeline.config import Config
from cleanfit.pipeline.diagnose import diagnose_run
from cleanfit.pipeline.model import build_model, classification_loss, make_optimizer, regression_loss, task_metrics
from cleanfit.pipeline.export import save_run_model
from cleanfit.pipeline.prepare import PreparedData, split_method
from cleanfit.pipeline.run_folder import RUN_FILE, check_checkpoint_dir, lock_run_folder, read_run_file
from cleanfit.report.run_report import log_run_artifacts
from cleanfit.seeding import seed_everything
from cleanfit.tracking import MLflowTracker, NullTracker
from cleanfit.tracking.environment import environment_params
from cleanfit.training import EarlyStopping, Trainer, constant, warmup_cosine, warmup_linear

logger = logging.getLogger("cleanfit")

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"


@dataclass
class TabularRun:
    """The result of :func:`cleanfit.pipeline.run.train_config`.

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
    loading: str = "in-memory"  # "out-of-core": a table over audit.memory, read one row group at a time

    def to_dict(self) -> dict[str, Any]:
        """The run as JSON-friendly values (what ``cleanfit train --json`` writes)."""
        return {
            "task": self.task,
            "metrics": {k: _finite_or_none(v) for k, v in self.metrics.items()},
            "split": {"method": split_method(self.config, self.task, self.splits), "fingerprint": self.splits.fingerprint},
            "audit": {"passed": bool(self.audit.passed), "findings": [f.to_dict() for f in self.audit.findings]},
            "diagnosis": [f.to_dict() for f in self.diagnosis],
            "epochs": len(self.history.epochs),
            "data": {"loading": self.loading},
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


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def fit_prepared(
    data: PreparedData,
    *,
    out: Path,
    checkpoint_dir: Path,
    identity: str,
    resume: bool = False,
    quiet: bool = False,
    track: bool = True,
) -> TabularRun:
    """Train on prepared data; ``out`` must already be claimed (see :func:`cleanfit.pipeline.run.claim_out`).

    This function starts the tracking run and finishes it, so the Trainer leaves it open
    (:func:`cleanfit.training.run_io.owns_run`) and writes no report of its own (``report=False``): the
    report here comes after the test rows are scored.
    """
    config = data.config
    main = rank() == 0
    # Everything that can still reject the config (the user's model factory) runs before anything is written.
    seed_everything(config.train.seed)
    model = build_model(config, data.n_features, data.n_outputs, base_dir=config.base_dir,
                        train_rows=data.rows("train"))  # the MLP's dropout: masks per global batch
    optimizer = make_optimizer(config, model.parameters())
    batches = {part: _batches(data, part) for part in ("train", "val", "test")}
    if main:  # the last check that can reject the run; nothing is written before it
        check_checkpoint_dir(checkpoint_dir)
    lock = lock_run_folder(out) if main else None  # one process per run folder, from its first write on
    try:
        return _fit_locked(data, model, optimizer, batches, out=out, checkpoint_dir=checkpoint_dir,
                           identity=identity, resume=resume, quiet=quiet, track=track)
    finally:
        if lock is not None:
            release(lock)


def _fit_locked(data: PreparedData, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                batches: dict[str, Any], *, out: Path, checkpoint_dir: Path, identity: str, resume: bool,
                quiet: bool, track: bool) -> TabularRun:
    """:func:`fit_prepared` once the run folder is this process's."""
    config = data.config
    main = rank() == 0
    tracker, run_id = _open_run(data, out, identity, resume=resume, tracked=main and track, main=main)
    trainer = _trainer(data, model, optimizer, checkpoint_dir, tracker, progress=not quiet and main)
    started = time.perf_counter()
    try:
        history = trainer.fit(batches["train"], batches["val"], epochs=config.train.epochs, resume=resume)
    except BaseException as exc:
        if main:
            _record_failure(exc, data, out, identity, run_id, tracker)
        raise
    seconds = time.perf_counter() - started
    result = TabularRun(
        config=config,
        task=data.task,
        metrics=_scores(trainer, batches),  # the test rows are scored once, here, after training has finished
        out=out,
        run_id=run_id,
        history=history,
        model=_unwrap(trainer),
        audit=data.audit,
        diagnosis=diagnose_run(history, data),  # with the audit, a baseline and config advice
        splits=data.splits,
        checkpoint_dir=checkpoint_dir,
        tracking_uri=_tracking_uri(tracker),
        loading=data.loading,
    )
    if main:
        try:
            _finish(result, data, identity, tracker, seconds, quiet)
        except DiskFull as exc:  # the run's files could not be written: it failed, and says so in one line
            _record_failure(exc, data, out, identity, run_id, tracker)
            raise ConfigError(f"the run's outputs could not be written: {disk_full_message(exc)}") from None
    return result


def _open_run(data: PreparedData, out: Path, identity: str, *, resume: bool, tracked: bool,
              main: bool) -> tuple[Any, str | None]:
    """Start (or resume) the tracking run and record the run as running in ``out``: rank 0 only."""
    previous = read_run_file(out) if resume else {}
    tracker = _make_tracker(data, out) if tracked else None
    run_id = tracker.start(run_id=previous.get("run_id")) if tracker is not None else None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / RUN_FILE, _run_record(data, identity, run_id, status="running"))
        if tracker is not None:
            tracker.log_params(_params(data))
    return tracker, run_id


def _trainer(data: PreparedData, model: torch.nn.Module, optimizer: torch.optim.Optimizer, checkpoint_dir: Path,
             tracker: Any, *, progress: bool) -> Trainer:
    """The Trainer of the config; the tracking run (started here) stays the caller's, the report too."""
    config = data.config
    return Trainer(
        model,
        optimizer,
        loss=classification_loss if data.task == "classification" else regression_loss,
        precision=config.train.precision,
        accumulate=config.train.accumulate,
        clip_grad=config.train.clip_grad or None,
        schedule=_schedule(config),
        metrics=task_metrics(data.task, data.target_scale),
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=config.checkpoint.every or None,
        keep_last=config.checkpoint.keep_last,
        tracker=tracker,
        seed=config.train.seed,
        early_stopping=EarlyStopping(config.train.early_stopping, restore_best=True) if config.train.early_stopping else None,
        progress=progress,
        report=False,  # _finish writes the fuller report, with the test scores
    )


def _record_failure(exc: BaseException, data: PreparedData, out: Path, identity: str, run_id: str | None,
                    tracker: Any) -> None:
    """A fit that raised (or was interrupted): the run file says so, and the tracking run ends with it."""
    status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
    try:  # on a full disk the small run file is rewritten in place; never hide the run's own error
        _write_json(out / RUN_FILE, _run_record(data, identity, run_id, status=status.lower()), in_place_if_full=True)
    except OSError as failed:
        logger.warning("could not record the run as %s in %s: %s", status.lower(), out / RUN_FILE, failed)
    if tracker is not None:
        tracker.finish(status)


def _scores(trainer: Trainer, batches: dict[str, Any]) -> dict[str, float]:
    """``val_<name>`` and ``test_<name>`` for the loss and each metric."""
    metrics: dict[str, float] = {}
    for part in ("val", "test"):
        if batches[part] is None:
            continue
        for name, value in trainer.evaluate(batches[part]).items():
            metrics[f"{part}_{name}"] = float(value)
    return metrics


def _finish(result: TabularRun, data: PreparedData, identity: str, tracker: Any, seconds: float, quiet: bool) -> None:
    """Rank 0: the report and its files, the metrics JSON, the final metrics in MLflow, the summary."""
    out = result.out
    sink = tracker if tracker is not None else NullTracker()
    written = log_run_artifacts(
        sink, out, history=result.history, diagnosis=result.diagnosis, audit=result.audit,
        config=_params(data), metrics=result.metrics, model=result.model,
        title=f"cleanfit run: {Path(data.config.data.path).name} -> {data.config.data.target}",
    )
    result.report_path = written["report"]
    save_run_model(out, data, tracker)  # the folder is a model: model.json beside model.pt (and MLflow's pyfunc)
    result.metrics_path = out / METRICS_FILE
    result.unlogged_path = _unlogged_path(tracker)
    _write_json(result.metrics_path, result.to_dict())
    _write_json(out / RUN_FILE, _run_record(data, identity, result.run_id, status="finished"))
    if tracker is not None:
        final = {k: v for k, v in result.metrics.items() if math.isfinite(v)}
        tracker.log_metrics(final, step=int(result.history.last.get("step", 0) or 0))
        tracker.set_tags({"cleanfit.task": data.task, "cleanfit.run": identity})
        tracker.log_artifact(result.metrics_path)
        tracker.finish("FINISHED")
        result.unlogged_path = _unlogged_path(tracker)
    if not quiet:
        _print_summary(result, seconds)


def _batches(data: PreparedData, part: str) -> Batches | None:
    if part != "train" and data.rows(part) == 0:
        return None
    train = data.config.train
    if data.large is not None:  # a table over audit.memory: its row groups, shuffled in buffers of blocks
        return Batches(data.large.source(part), per_process_batch(train.batch_size),
                       shuffle="blocks" if part == "train" else False, seed=train.seed)
    X, y = data.arrays[part]
    if data.task == "regression":
        mean, std = data.target_scale
        target = torch.from_numpy(((y - mean) / std).astype(np.float32))
    else:
        target = torch.from_numpy(y.astype(np.int64))
    return Batches((torch.from_numpy(X), target), per_process_batch(train.batch_size), shuffle=part == "train",
                   seed=train.seed)


def per_process_batch(batch_size: int) -> int:
    """``train.batch_size`` is the global batch: each of torchrun's processes takes its share of it, so
    the run is the same on 1 or N processes.

    >>> per_process_batch(64)
    64
    """
    processes = world()[1]
    if batch_size % processes:
        raise ConfigError(
            f"train.batch_size = {batch_size} is the global batch and does not divide over the {processes} "
            f"processes of this torchrun; set train.batch_size to a multiple of {processes}"
        )
    return batch_size // processes


def _schedule(config: Any) -> Any:
    kind = config.train.schedule
    if kind == "constant":
        return constant()
    factory = warmup_cosine if kind == "warmup_cosine" else warmup_linear
    return factory(warmup=float(config.train.warmup))


def _make_tracker(data: PreparedData, out: Path) -> Any:
    settings = data.config.tracking
    if settings.backend == "none":
        return None
    # what the store does not take is written beside the run, not into the working directory
    return MLflowTracker(experiment=settings.experiment or "cleanfit", tracking_uri=settings.uri, unlogged_dir=out)


def _unlogged_path(tracker: Any) -> Path | None:
    """The tracker's fallback file when the store failed (read after ``fit`` and again at the end)."""
    if tracker is None or getattr(tracker, "failure_", None) is None:
        return None
    return getattr(tracker, "unlogged_path_", None)


def _tracking_uri(tracker: Any) -> str | None:
    if tracker is None:
        return None
    return getattr(tracker, "tracking_uri_", None) or getattr(tracker, "tracking_uri", None)


def _params(data: PreparedData) -> dict[str, Any]:
    config = data.config
    params: dict[str, Any] = dict(config.flat())
    params.update(
        {
            "task": data.task,
            "split.method": split_method(config, data.task, data.splits),
            "split.fingerprint": data.splits.fingerprint,
            "split.rows": json.dumps({p: data.rows(p) for p in ("train", "val", "test")}),
            "data.fingerprint": data.data_fingerprint,
            "data.rows": data.n_rows,
            "data.loading": data.loading,
            "data.features": data.n_features,
        }
    )
    params.update(environment_params())
    return {k: v for k, v in params.items() if v is not None}


def _print_summary(result: TabularRun, seconds: float) -> None:
    lines = [f"cleanfit: trained {result.task} on {Path(result.config.data.path).name} in {seconds:.1f}s"]
    lines.append("  " + "  ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()))
    lines.append(f"  batch:       {batch_line(result.config.train.batch_size, result.config.train.accumulate)}")
    for finding in result.diagnosis:
        lines.append(f"  [{finding.severity}] {finding.check}: {finding.message}")
    lines.append(f"  report:      {result.report_path}")
    lines.append(f"  metrics:     {result.metrics_path}")
    lines.append(f"  checkpoints: {result.checkpoint_dir}")
    lines.append(f"  predict:     cleanfit predict {result.out} NEW.csv --out predictions.csv")
    if result.unlogged_path is not None:
        lines.append(f"  MLflow:      tracking failed (see the warning above); what it missed is in {result.unlogged_path}")
    elif result.run_id is not None:
        lines.append(f"  MLflow run:  {result.run_id} in {result.tracking_uri}")
        lines.append(f"  open it:     mlflow ui --backend-store-uri {result.tracking_uri}")
        lines.append(f"  serve it:    mlflow models serve -m runs:/{result.run_id}/model --env-manager local")
    print("\n".join(lines), flush=True)


def batch_line(batch_size: int, accumulate: int = 1) -> str:
    """How the global batch is made, e.g. under ``torchrun --nproc_per_node 2``: ``2 processes x 32 = 64 per step``."""
    processes = world()[1]
    share = f"{processes} process{'es' if processes > 1 else ''} x {batch_size // processes}"
    if accumulate > 1:
        share += f" x {accumulate} accumulated"
    return f"{share} = {batch_size * accumulate} per step"


def _run_record(data: PreparedData, identity: str, run_id: str | None, *, status: str) -> dict[str, Any]:
    return {
        "identity": identity,
        "status": status,
        "run_id": run_id,
        "data_fingerprint": data.data_fingerprint,
        "split_fingerprint": data.splits.fingerprint,
        "config": data.config.model_dump(mode="json"),
    }


def _unwrap(trainer: Any) -> Any:
    model = getattr(trainer, "model", None)
    return getattr(model, "module", model)
