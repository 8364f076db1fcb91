"""The train-loss log of the Trainer: one host sync for the optimizer steps since the last log.

Each optimizer step leaves ``(window loss, scale, units)`` in ``RunContext.pending``: the window's loss
(a device tensor; under DDP this rank's share, so the mean over ranks is the global window mean), the
scale that turns it back into this rank's sum of loss x units, and this rank's units (rows, or the counts
``step -> (loss, count)`` returned). Logging adds them to the epoch's exact sums, records the mean of the
steps in the History and the tracker, and stops at a non-finite loss.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cleanfit.errors import TrainingError
from cleanfit.training import run_io as io
from cleanfit.training.batch import host_numbers

__all__ = ["check_val_loss", "epoch_row", "log_steps"]


def log_steps(s: Any, run: Any, dist: Any, stopped: str) -> None:
    """Log the pending steps of ``run`` into TrainState ``s`` (``stopped``: what a non-finite loss left behind)."""
    pending, run.pending = run.pending, []
    losses = torch.stack([loss.float() for loss, _, _ in pending])
    if dist.enabled:  # this rank's values for the epoch's sum, the mean over ranks for the log
        local = losses.tolist()
        values = (dist.all_reduce_sum(losses) / dist.world_size).tolist()
    else:
        local = values = losses.tolist()
    numbers = host_numbers([scale for _, scale, _ in pending] + [units for _, _, units in pending])
    scales, units = numbers[: len(pending)], numbers[len(pending):]
    s.totals["loss_sum"] += math.fsum(v * scale for v, scale in zip(local, scales))
    total_units = math.fsum(units)
    s.totals["examples"] += int(total_units) if total_units.is_integer() else total_units
    first_step = s.step - len(values) + 1
    bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
    if bad is not None:
        row = {"step": first_step + bad, "epoch": s.epoch + 1, "train_loss": values[bad], "lr": run.last_lr}
        s.history.add_step(row)
        run.tracker.log_metrics(io.step_metrics(row), step=row["step"])
        io.logger.error("non-finite train loss %s at epoch %d, step %d", values[bad], row["epoch"], row["step"])
        raise TrainingError(
            f"the train loss became {values[bad]} at epoch {row['epoch']}, step {row['step']} (lr "
            f"{io.format_lr(run.last_lr)}); {stopped}. Lower the learning rate, add warmup or "
            "clip_grad=1.0, and check the data for NaN/inf values."
        )
    row = {"step": s.step, "epoch": s.epoch + 1, "train_loss": sum(values) / len(values), "lr": run.last_lr}
    s.history.add_step(row)
    run.tracker.log_metrics(io.step_metrics(row), step=s.step)
    run.bar.set_postfix_str(f"epoch {row['epoch']} · loss {io.format_loss(row['train_loss'])}", refresh=False)


def epoch_row(s: Any, totals: dict[str, Any], *, lr: float) -> dict[str, Any]:
    """The History row of the epoch TrainState ``s`` just finished, from its summed ``totals`` (all ranks):
    the exact train loss over its units, the mean gradient norm, the steps fp16 skipped; ``val_loss`` to fill."""
    examples = totals["examples"]
    return {
        "epoch": s.epoch + 1,
        "step": s.step,
        "train_loss": totals["loss_sum"] / examples if examples else float("nan"),
        "val_loss": None,
        "lr": lr,
        "grad_norm": float(totals["grad_norm_sum"]) / totals["grad_norms"] if totals["grad_norms"] else None,
        "skipped_steps": int(totals["skipped_steps"]),
    }


def check_val_loss(row: dict[str, Any], stopped: str) -> None:
    """A non-finite validation loss stops the run, as a non-finite train loss does (``stopped``: what it left)."""
    if row["val_loss"] is not None and not math.isfinite(row["val_loss"]):
        raise TrainingError(f"the validation loss became {row['val_loss']} at epoch {row['epoch']}, step "
                            f"{row['step']}; {stopped}. Check the val data for NaN/inf values, and "
                            "lower the learning rate if the train loss is rising too.")
