"""Evaluation and prediction loops: exact means over examples, outputs in data order.

The loss is summed as ``batch mean x batch size`` (or ``x count`` for ``step -> (loss, count)``) and
divided by the number of examples (or counted units) over all ranks, never averaged over batches, so a partial last batch counts for what it holds. Metrics see
the full, concatenated outputs and targets once.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from cleanfit.data.batches import batch_len
from cleanfit.data.devices import to_device
from cleanfit.errors import CleanfitError, DataError, TrainingError
from cleanfit.training.batch import compute_loss, describe, inputs
from cleanfit.training.distributed import Distributed
from cleanfit.training.precision import Precision


class _EvalMode:
    """Eval mode and no gradients inside; the model's previous mode restored after."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.float()
    return tensor.to("cpu")


def evaluate(
    model: torch.nn.Module,
    batches: Any,
    *,
    precision: Precision,
    device: torch.device,
    dist: Distributed,
    loss: Callable[..., torch.Tensor] | None,
    step: Callable[..., torch.Tensor] | None,
    metrics: dict[str, Callable[[Any, Any], float]],
) -> dict[str, float]:
    """``{"loss": mean over examples, <metric>: value, ...}`` over one full pass of ``batches``."""
    batches.set_epoch(0)  # the same, complete pass every time (and on every resume)
    dtype = torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64
    loss_sum = torch.zeros((), dtype=dtype, device=device)
    examples = torch.zeros((), dtype=dtype, device=device)  # rows, or the units step -> (loss, count) gave
    outputs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    with _EvalMode(model):
        for batch in batches:
            n = batch_len(batch)
            if n == 0:
                continue  # a rank's empty share of a tiny last global batch
            batch = to_device(batch, device)
            with precision.autocast():
                value, out, tgt, units = compute_loss(model, batch, loss=loss, step=step, examples=n)
            weight = n if units is None else torch.as_tensor(units, dtype=dtype).to(device)
            loss_sum += value.detach().to(dtype) * weight
            examples += weight
            if metrics:
                if not isinstance(out, torch.Tensor) or not isinstance(tgt, torch.Tensor):
                    raise TrainingError(
                        f"Trainer(metrics=...) needs a model that returns a tensor and tensor targets, got "
                        f"{type(out).__name__} outputs and {type(tgt).__name__} targets; drop metrics= and compute "
                        "them from predict(), or return the logits tensor from the model."
                    )
                outputs.append(_cpu(out))
                targets.append(_cpu(tgt))
    totals = dist.all_reduce_sum(torch.stack([loss_sum, examples]))
    total_loss, total_examples = totals.tolist()
    if total_examples == 0:
        raise DataError("evaluate() got batches with no examples; pass Batches over at least one example.")
    result = {"loss": total_loss / total_examples}
    if metrics:
        all_outputs = torch.cat([t for part in dist.all_gather(outputs) for t in part])
        all_targets = torch.cat([t for part in dist.all_gather(targets) for t in part])
        for name, fn in metrics.items():
            try:
                result[name] = float(fn(all_outputs, all_targets))
            except CleanfitError:
                raise
            except Exception as exc:  # name the metric: the traceback alone points into the evaluation loop
                raise TrainingError(
                    f"metric {name!r} failed on outputs {tuple(all_outputs.shape)} and targets "
                    f"{tuple(all_targets.shape)}: {type(exc).__name__}: {exc}; fix the function or drop it from "
                    "Trainer(metrics=...)."
                ) from exc
    return result


def predict(
    model: torch.nn.Module, batches: Any, *, precision: Precision, device: torch.device, dist: Distributed
) -> torch.Tensor:
    """The model's outputs for every example, on the CPU, in the order of the data."""
    if getattr(batches, "shuffle", False):
        raise DataError(
            "predict() got shuffled Batches, so its outputs would not line up with the data; pass "
            "Batches(data, batch_size, shuffle=False)."
        )
    batches.set_epoch(0)
    parts: list[torch.Tensor | None] = []
    with _EvalMode(model):
        for batch in batches:
            if batch_len(batch) == 0:
                parts.append(None)
                continue
            x = inputs(to_device(batch, device))
            try:
                with precision.autocast():
                    out = model(x)
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as exc:
                what = describe(x) if isinstance(x, torch.Tensor) else f"a {type(x).__name__} of {describe(x)}"
                raise TrainingError(
                    f"predict(): the model does not take the batch's input ({what}): {type(exc).__name__}: "
                    f"{exc}. predict() calls model(x) with x of (x, y) or (x,) batches and with any other batch "
                    "(a dict, ...) whole; pass Batches of what the model takes, e.g. cf.Batches(X, 64, shuffle=False)."
                ) from exc
            if not isinstance(out, torch.Tensor):
                raise TrainingError(f"predict() needs a model that returns a tensor, got {type(out).__name__}.")
            parts.append(_cpu(out))
    # Under DDP rank r holds the r-th slice of every global batch: interleave them back into data order.
    per_rank = dist.all_gather(parts)
    ordered = [part for j in range(len(parts)) for rank_parts in per_rank if (part := rank_parts[j]) is not None]
    if not ordered:
        raise DataError("predict() got batches with no examples; pass Batches over at least one example.")
    return torch.cat(ordered)
