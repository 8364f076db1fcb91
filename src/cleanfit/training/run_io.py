"""What a run tells the outside world: the epoch log line, the progress bar, tracked params and
metrics, and the report at the end. Kept apart from the loop so the loop reads as training only."""

from __future__ import annotations

import logging
import math
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Mapping

from tqdm.auto import tqdm

from cleanfit.report.run_report import log_run_artifacts  # matplotlib is imported only when it plots
from cleanfit.tracking import make_tracker
from cleanfit.tracking.environment import environment_params
from cleanfit.training.schedules import describe_schedule

__all__ = ["make_tracker", "owns_run", "report_writer", "write_report", "prefixed", "log_after_fit"]

logger = logging.getLogger("cleanfit")


def owns_run(tracker: Any) -> bool:
    """Who owns a tracking run, decided once, before the Trainer starts it: the Trainer owns a run it starts
    itself (``tracker`` None or ``"mlflow"``, or a Tracker with no run yet), and then finishes it (FAILED on an
    error) and writes the run report; a run the caller started (it has a ``run_id``, or its store failed to open
    it: ``failure_``) is the caller's, which the Trainer only flushes.

    >>> from cleanfit.tracking import NullTracker
    >>> owns_run(None), owns_run("mlflow"), owns_run(NullTracker())
    (True, True, True)
    """
    if tracker is None or isinstance(tracker, str):
        return True
    return getattr(tracker, "run_id", None) is None and getattr(tracker, "failure_", None) is None


def tracked(tracker: Any) -> bool:
    """Whether ``tracker`` records this run: it has a run, or its store failed and it keeps a fallback file."""
    return getattr(tracker, "run_id", None) is not None or getattr(tracker, "failure_", None) is not None


def format_lr(lr: float) -> str:
    """``3.0e-4`` style.

    >>> format_lr(3e-4), format_lr(1.0), format_lr(0.0), format_lr(float("inf"))
    ('3.0e-4', '1.0e0', '0', 'inf')
    """
    if lr == 0:
        return "0"
    if not math.isfinite(lr):
        return str(lr)
    mantissa, exponent = f"{lr:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def format_loss(value: float | None) -> str:
    """Three significant digits, NaN/inf spelled out.

    >>> format_loss(0.41234), format_loss(float("nan")), format_loss(None)
    ('0.412', 'nan', '-')
    """
    if value is None:
        return "-"
    return f"{value:.3g}" if math.isfinite(value) else str(value)


def epoch_line(row: Mapping[str, Any], *, epochs: int, total_steps: int, batches_per_epoch: int,
               batch_size: int, effective: int) -> str:
    """``epoch 3/10 · step 300/1000 · 100 batches/epoch · batch 64 (effective 256) · train 0.412 · val 0.455 · lr 3.0e-4``"""
    parts = [
        f"epoch {row['epoch']}/{epochs}",
        f"step {row['step']}/{total_steps}",
        f"{batches_per_epoch} batches/epoch",
        f"batch {batch_size} (effective {effective})",
        f"train {format_loss(row['train_loss'])}",
    ]
    if row.get("val_loss") is not None:
        parts.append(f"val {format_loss(row['val_loss'])}")
    parts.append(f"lr {format_lr(row['lr'])}")
    parts += [f"{k} {v:.4g}" for k, v in row.items() if k.startswith("val_") and k != "val_loss" and v is not None]
    if row.get("skipped_steps"):
        parts.append(f"{row['skipped_steps']} skipped steps (fp16 overflow)")
    return " · ".join(parts)


def show_epoch_lines(enabled: bool) -> None:
    """With ``progress=True``, print the epoch lines to stderr unless the application has set up
    logging itself (any handler on the ``cleanfit`` logger or above it)."""
    if enabled and not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)


def progress_bar(enabled: bool, total: int, initial: int) -> Any:
    """A tqdm bar over optimizer steps, only on a terminal and when asked for."""
    show = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="step", disable=not show, leave=False, dynamic_ncols=True)


def run_params(trainer: Any, train: Any, val: Any, *, epochs: int, total_steps: int, world_size: int) -> dict[str, Any]:
    """Everything needed to know what this run was."""
    group = trainer.optimizer.param_groups[0]
    params: dict[str, Any] = {
        "seed": trainer.seed,
        "batch_size": train.batch_size,
        "effective_batch_size": train.batch_size * world_size * trainer.accumulate,
        "accumulate": trainer.accumulate,
        "world_size": world_size,
        "epochs": epochs,
        "batches_per_epoch": len(train),
        "total_steps": total_steps,
        "train_examples": train.num_examples,
        "val_examples": None if val is None else val.num_examples,
        "precision": trainer.precision_.name,
        "device": str(trainer.device_),
        "optimizer": type(trainer.optimizer).__name__,
        "clip_grad": trainer.clip_grad,
        "model": type(trainer.model).__name__,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "early_stopping": repr(trainer.early_stopping) if trainer.early_stopping else None,
    }
    for key, value in group.items():
        if key not in ("params", "initial_lr") and isinstance(value, (int, float, str, bool, tuple)):
            params[f"optimizer.{key}"] = value
    params["optimizer.lr"] = group.get("initial_lr", group["lr"])  # the schedule's base, not its first value
    params.update({f"schedule.{k}" if k != "schedule" else k: v for k, v in describe_schedule(trainer.schedule).items()})
    params.update(environment_params())
    return {k: v for k, v in params.items() if v is not None}


def step_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a logged optimizer step."""
    out = {"batch_loss": float(row["train_loss"])}
    if row.get("lr") is not None:
        out["lr"] = float(row["lr"])
    return out


def resend_history(tracker: Any, history: Any) -> None:
    """Log a restored History again after a resume: the tracker skips the values it already holds, so
    whatever a killed process had not yet sent is filled in, without duplicates."""
    for row in history.steps:
        tracker.log_metrics(step_metrics(row), step=int(row["step"]))
    for row in history.epochs:
        tracker.log_metrics(epoch_metrics(row), step=int(row["step"]))


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of an epoch row that a tracker plots (the val-train gap included). The learning
    rate is left out: the per-step series already holds it, at the same step."""
    out = {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k not in ("epoch", "step", "lr")}
    if row.get("val_loss") is not None and row.get("train_loss") is not None:
        out["gap"] = float(row["val_loss"]) - float(row["train_loss"])
    out["epoch"] = float(row["epoch"])
    return out


def report_writer(report: Any, tracker: Any, *, owns_run: bool, directory: Path | None) -> Any:
    """What writes the report at the end of a fit (``Trainer(report=...)``): the caller's callable; with
    ``True``, :func:`write_report` for a run the Trainer owns that has somewhere to go (a checkpoint folder
    or a tracking run); else None."""
    if callable(report):
        return report
    somewhere = directory is not None or getattr(tracker, "run_id", None) is not None
    return write_report if report and owns_run and somewhere else None


def call_report(writer: Any, tracker: Any, directory: Path | None, history: Any, params: Mapping[str, Any],
                status: str) -> None:
    """Run the report writer with the run's outcome; a failing report must not hide the run's own outcome."""
    try:
        last = history.last
        writer(tracker=tracker, directory=directory, history=history, config={**params, "status": status},
               metrics={k: v for k, v in last.items() if k != "epoch"}, findings=history.diagnose())
    except Exception as exc:
        logger.warning("could not write the run report: %s", exc)


def write_report(*, tracker: Any, directory: Path | None, history: Any, config: Mapping[str, Any],
                 metrics: Mapping[str, Any], findings: list[Any]) -> Path | None:
    """The loss-curve plot, HTML report, history and diagnosis (``cleanfit.report.run_report.log_run_artifacts``):
    written next to the checkpoints and logged to the tracker, which is also tagged with the diagnosis.

    ``Trainer(report=True)`` calls it at the end of a fit whose run the Trainer owns (see :func:`owns_run`); a
    caller that started the run itself (``cleanfit train``) writes its own, fuller report.
    """
    if not history.epochs:
        return None
    if directory is None and getattr(tracker, "run_id", None) is None:
        return None
    target = directory if directory is not None else Path(tempfile.mkdtemp(prefix="cleanfit-report-"))
    written = log_run_artifacts(tracker, target, history=history, diagnosis=findings, config=dict(config),
                                metrics=dict(metrics))
    if directory is None and getattr(tracker, "failure_", None) is None:
        shutil.rmtree(target, ignore_errors=True)  # the tracking store holds copies now
        return None
    return written["report"]


def prefixed(scores: Mapping[str, float], prefix: str) -> dict[str, float]:
    """``{"<prefix>_<name>": value}`` for the finite scores (what a tracker can store).

    >>> prefixed({"loss": 0.25, "auc": float("nan")}, "test")
    {'test_loss': 0.25}
    """
    return {f"{prefix}_{name}": float(value) for name, value in scores.items() if math.isfinite(value)}


def log_after_fit(after_fit: tuple[Any, str, int], metrics: Mapping[str, float]) -> None:
    """Add ``metrics`` to the run a finished ``fit`` started: reopened, logged at its last step, ended again."""
    tracker, run_id, step = after_fit
    tracker.start(run_id=run_id)
    tracker.log_metrics(metrics, step=step)
    tracker.finish("FINISHED")


def stopped(checkpoint_dir: Path | None) -> str:
    """What a failed fit left behind, for its error message."""
    if checkpoint_dir is None:
        return "training stopped (with no checkpoint_dir, nothing was saved)"
    return f"training stopped and the last good checkpoint in {checkpoint_dir} is kept"
