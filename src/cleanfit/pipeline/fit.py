"""Steps 5-6 of a tabular run: train, score the test rows once, diagnose, track and report.

Under torchrun every rank trains (the Trainer shards the batches and wraps the model in DDP);
only rank 0 writes files, talks to MLflow and prints.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cleanfit._util.files import write_json as _write_json
from cleanfit._util.ranks import rank
from cleanfit.pipeline.model import build_model, classification_loss, make_optimizer, regression_loss, task_metrics
from cleanfit.pipeline.run import RUN_FILE, PreparedData, TabularRun, split_method

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"


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
    """Train on prepared data; ``out`` must already be claimed (see :func:`cleanfit.pipeline.run.claim_out`)."""
    from cleanfit.data.batches import Batches
    from cleanfit.seeding import seed_everything
    from cleanfit.training import EarlyStopping, Trainer

    config = data.config
    main = rank() == 0
    # Everything that can still reject the config (the user's model factory) runs before anything is written.
    seed_everything(config.train.seed)
    model = build_model(config, data.n_features, data.n_outputs, base_dir=config.base_dir)
    optimizer = make_optimizer(config, model.parameters())
    batches = {part: _batches(Batches, data, part) for part in ("train", "val", "test")}

    if main:  # the last check that can reject the run; nothing is written before it
        _check_checkpoint_dir(checkpoint_dir)
    previous = _read_run_file(out) if resume else {}
    tracker = _make_tracker(data, out) if (main and track) else None
    run_id = tracker.start(run_id=previous.get("run_id")) if tracker is not None else None
    if main:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(out / RUN_FILE, _run_record(data, identity, run_id, status="running"))
        if tracker is not None:
            tracker.log_params(_params(data))

    trainer = Trainer(
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
        tracker=_CallerOwned(tracker) if tracker is not None else _Untracked(),
        seed=config.train.seed,
        early_stopping=_early_stopping(EarlyStopping, config.train.early_stopping),
        progress=not quiet and main,
    )
    started = time.perf_counter()
    try:
        history = trainer.fit(batches["train"], batches["val"], epochs=config.train.epochs, resume=resume)
    except BaseException as exc:
        if main:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            _write_json(out / RUN_FILE, _run_record(data, identity, run_id, status=status.lower()))
            if tracker is not None:
                tracker.finish(status)
        raise
    seconds = time.perf_counter() - started

    # The test rows are scored once, here, after training has finished.
    metrics: dict[str, float] = {}
    for part in ("val", "test"):
        if batches[part] is None:
            continue
        for name, value in trainer.evaluate(batches[part]).items():
            metrics[f"{part}_{name}"] = float(value)
    diagnosis = history.diagnose()

    result = TabularRun(
        config=config,
        task=data.task,
        metrics=metrics,
        out=out,
        run_id=run_id,
        history=history,
        model=_unwrap(trainer),
        audit=data.audit,
        diagnosis=diagnosis,
        splits=data.splits,
        checkpoint_dir=checkpoint_dir,
        tracking_uri=_tracking_uri(tracker),
    )
    if main:
        _finish(result, data, identity, tracker, seconds, quiet)
    return result


def _finish(result: TabularRun, data: PreparedData, identity: str, tracker: Any, seconds: float, quiet: bool) -> None:
    """Rank 0: the report and its files, the metrics JSON, the final metrics in MLflow, the summary."""
    from cleanfit.report.run_report import log_run_artifacts
    from cleanfit.tracking.base import NullTracker

    out = result.out
    sink = tracker if tracker is not None else NullTracker()
    written = log_run_artifacts(
        sink, out, history=result.history, diagnosis=result.diagnosis, audit=result.audit,
        config=_params(data), metrics=result.metrics, model=result.model,
        title=f"cleanfit run: {Path(data.config.data.path).name} -> {data.config.data.target}",
    )
    result.report_path = written["report"]
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


def _check_checkpoint_dir(directory: Path) -> None:
    """A checkpoint folder that cannot be made is a config mistake, found before the run is recorded."""
    from cleanfit.errors import ConfigError

    missing = directory
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    try:
        if missing.parent.exists() and not missing.parent.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        if not directory.exists():
            missing.mkdir()  # tried, then removed: nothing is left behind by a check
            missing.rmdir()
        elif not directory.is_dir():
            raise NotADirectoryError(20, "Not a directory")
    except OSError as exc:
        raise ConfigError(
            f"checkpoint.dir = {str(directory)!r}: cannot create it ({exc.strerror}); set checkpoint.dir "
            "(or --out) to a folder you can write"
        ) from None


def _batches(Batches: Any, data: PreparedData, part: str) -> Any:
    X, y = data.arrays[part]
    if part != "train" and len(y) == 0:
        return None
    if data.task == "regression":
        mean, std = data.target_scale
        target = torch.from_numpy(((y - mean) / std).astype(np.float32))
    else:
        target = torch.from_numpy(y.astype(np.int64))
    train = data.config.train
    return Batches((torch.from_numpy(X), target), train.batch_size, shuffle=part == "train", seed=train.seed)


def _schedule(config: Any) -> Any:
    from cleanfit.training import constant, warmup_cosine, warmup_linear

    kind = config.train.schedule
    if kind == "constant":
        return constant()
    factory = warmup_cosine if kind == "warmup_cosine" else warmup_linear
    return factory(warmup=float(config.train.warmup))


def _early_stopping(EarlyStopping: Any, patience: int) -> Any:
    return EarlyStopping(patience, restore_best=True) if patience else None


class _Untracked:
    """The Tracker of an untracked run whose report this module writes itself.

    A Trainer writes its own report only for a run it started; this one counts as started
    (``run_id`` is not None) and records nothing, so each run gets exactly one report.
    """

    run_id: str | None = ""

    def start(self, *, run_id: str | None = None) -> str | None:
        return None

    def log_params(self, params: Any) -> None: ...
    def log_metrics(self, metrics: Any, step: int) -> None: ...
    def log_artifact(self, path: Any, artifact_path: str | None = None) -> None: ...
    def set_tags(self, tags: Any) -> None: ...
    def flush(self) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


class _CallerOwned:
    """The run's tracker as the Trainer sees it: started and finished here, never by the Trainer.

    A Trainer finishes a tracker whose ``run_id`` is None, taking it for one it started itself. When the
    store could not open the run, ``run_id`` stays None; this wrapper still reports it as the caller's
    (``""``), so the final metrics, tags and report can follow (into the unlogged file) after ``fit``.
    """

    def __init__(self, tracker: Any) -> None:
        self.tracker = tracker

    @property
    def run_id(self) -> str | None:
        return self.tracker.run_id if self.tracker.run_id is not None else ""

    def start(self, *, run_id: str | None = None) -> str | None:
        return self.tracker.start(run_id=run_id)

    def log_params(self, params: Any) -> None:
        self.tracker.log_params(params)

    def log_metrics(self, metrics: Any, step: int) -> None:
        self.tracker.log_metrics(metrics, step)

    def log_artifact(self, path: Any, artifact_path: str | None = None) -> None:
        self.tracker.log_artifact(path, artifact_path)

    def set_tags(self, tags: Any) -> None:
        self.tracker.set_tags(tags)

    def flush(self) -> None:
        self.tracker.flush()

    def finish(self, status: str = "FINISHED") -> None:
        self.tracker.finish(status)


def _make_tracker(data: PreparedData, out: Path) -> Any:
    settings = data.config.tracking
    if settings.backend == "none":
        return None
    from cleanfit.tracking.mlflow_tracker import MLflowTracker

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
    from cleanfit.tracking.environment import environment_params

    config = data.config
    params: dict[str, Any] = dict(config.flat())
    params.update(
        {
            "task": data.task,
            "split.method": split_method(config, data.task),
            "split.fingerprint": data.splits.fingerprint,
            "split.rows": json.dumps({p: int(len(getattr(data.splits, p))) for p in ("train", "val", "test")}),
            "data.fingerprint": data.data_fingerprint,
            "data.rows": len(data.frame),
            "data.features": data.n_features,
        }
    )
    params.update(environment_params())
    return {k: v for k, v in params.items() if v is not None}


def _print_summary(result: TabularRun, seconds: float) -> None:
    lines = [f"cleanfit: trained {result.task} on {Path(result.config.data.path).name} in {seconds:.1f}s"]
    lines.append("  " + "  ".join(f"{k}={v:.4g}" for k, v in result.metrics.items()))
    for finding in result.diagnosis:
        lines.append(f"  [{finding.severity}] {finding.check}: {finding.message}")
    lines.append(f"  report:      {result.report_path}")
    lines.append(f"  metrics:     {result.metrics_path}")
    lines.append(f"  checkpoints: {result.checkpoint_dir}")
    if result.unlogged_path is not None:
        lines.append(f"  MLflow:      tracking failed (see the warning above); what it missed is in {result.unlogged_path}")
    elif result.run_id is not None:
        lines.append(f"  MLflow run:  {result.run_id} in {result.tracking_uri}")
        lines.append(f"  open it:     mlflow ui --backend-store-uri {result.tracking_uri}")
    print("\n".join(lines), flush=True)


def _run_record(data: PreparedData, identity: str, run_id: str | None, *, status: str) -> dict[str, Any]:
    return {
        "identity": identity,
        "status": status,
        "run_id": run_id,
        "data_fingerprint": data.data_fingerprint,
        "split_fingerprint": data.splits.fingerprint,
        "config": data.config.model_dump(mode="json"),
    }


def _read_run_file(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _unwrap(trainer: Any) -> Any:
    model = getattr(trainer, "model", None)
    return getattr(model, "module", model)
