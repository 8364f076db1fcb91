"""Small pieces the training step calls on one batch: split it, run the loss, describe it in errors."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import torch

from cleanfit.data.batches import batch_len
from cleanfit.errors import TrainingError

LossFn = Callable[[Any, Any], torch.Tensor]
StepFn = Callable[[torch.nn.Module, Any], torch.Tensor]


def windows(batches: Any, size: int) -> Iterator[list[Any]]:
    """Consecutive groups of ``size`` batches (the last group of an epoch may be shorter).

    >>> [len(w) for w in windows(range(7), 3)]
    [3, 3, 1]
    """
    window: list[Any] = []
    for batch in batches:
        window.append(batch)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def count(batch: Any) -> int:
    """The number of examples in a batch (``batch_len``, with a fast path for ``(x, y)`` tuples).

    >>> count((torch.zeros(5, 2), torch.zeros(5))), count({"x": np.zeros((3, 1))})
    (5, 3)
    """
    if type(batch) in (tuple, list) and isinstance(batch[0], (torch.Tensor, np.ndarray)):
        return len(batch[0])
    return batch_len(batch)


def loss_weights(counts: list[int], train: Any, first_batch: int, dist: Any) -> tuple[list[float], float]:
    """Each micro-batch's share of the window's examples (over all ranks), so the accumulated gradient
    equals the gradient on the concatenated window. DDP averages gradients over ranks, hence the factor
    ``world_size``. Also returns ``examples in the window / world_size``. ``dist``: the Trainer's
    :class:`~cleanfit.training.distributed.Distributed`.
    """
    if len(counts) == 1 and not dist.enabled:
        return [1.0], float(counts[0])
    total = sum(counts) if not dist.enabled else global_examples(train, first_batch, len(counts))
    world = dist.world_size
    return [n * world / total for n in counts], total / world


def weighted_sum(losses: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """``sum(weight * loss)`` over a window's micro-batches, on the device."""
    if weights == [1.0]:
        return losses[0]
    total = losses[0] * weights[0]
    for loss, weight in zip(losses[1:], weights[1:]):
        total.add_(loss, alpha=weight)
    return total


def needs_move(batch: Any, device: torch.device) -> bool:
    """False when every leaf of ``batch`` is already a tensor on ``device`` (Batches keep their
    structure and array type, so the first batch of an epoch speaks for the rest).

    >>> needs_move((torch.zeros(2), torch.zeros(2)), torch.device("cpu")), needs_move(np.zeros(2), torch.device("cpu"))
    (False, True)
    """
    if isinstance(batch, torch.Tensor):
        return batch.device != device
    if isinstance(batch, (tuple, list)):
        return any(needs_move(v, device) for v in batch)
    if isinstance(batch, dict):
        return any(needs_move(v, device) for v in batch.values())
    return not isinstance(batch, (str, bytes, int, float, bool, type(None)))


def inputs_and_targets(batch: Any) -> tuple[Any, Any]:
    """``(x, y)`` of a batch for ``Trainer(loss=...)``."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TrainingError(
        f"Trainer(loss=...) needs (x, y) batches, got {describe(batch)}; for batches of another structure "
        "pass step=lambda model, batch: <loss> instead of loss=."
    )


def inputs(batch: Any) -> Any:
    """The model's input of a batch for ``predict``: ``x`` of ``(x, y)``/``(x,)``, else the batch itself."""
    if isinstance(batch, (tuple, list)) and not hasattr(batch, "_fields"):
        return batch[0]
    return batch


def compute_loss(
    net: torch.nn.Module, batch: Any, *, loss: LossFn | None, step: StepFn | None, examples: int
) -> tuple[torch.Tensor, torch.Tensor | None, Any, Any]:
    """``(mean loss, outputs or None, targets or None, count or None)`` of one batch, with readable shape
    errors. ``count`` is what ``step(model, batch) -> (loss, count)`` returned (e.g. non-padding tokens):
    the loss is the mean over that many units, and they, not the rows, weight it.

    A batch with no examples (a rank's share of a tiny last global batch under DDP) still runs the
    model, so that DDP sees the same forward/backward on every rank, and gives a zero loss.
    """
    units = None
    try:
        if step is not None:
            value, outputs, targets = step(net, batch), None, None
            if isinstance(value, tuple):
                value, units = _loss_and_count(value)
        else:
            x, targets = inputs_and_targets(batch)
            outputs = net(x)
            value = loss(outputs, targets) if examples else outputs.sum() * 0.0  # type: ignore[misc]
    except TrainingError:
        raise
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise TrainingError(
            f"the model and loss do not fit the batch ({describe(batch)}): {type(exc).__name__}: {exc}. "
            "Check that the model's input size matches the data's features and that the targets have the "
            "shape and dtype the loss expects (e.g. class indices int64 of shape (n,) for cross_entropy)."
        ) from exc
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        what = f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise TrainingError(
            f"the loss must be a scalar tensor (the mean over the batch), got {what} for a batch of "
            f"{describe(batch)}; use a loss with reduction='mean'."
        )
    if not examples and step is not None:
        value = torch.nan_to_num(value) * 0.0
    return value, outputs, targets, units


def _loss_and_count(result: tuple[Any, ...]) -> tuple[Any, Any]:
    """``(loss, count)`` from a step's tuple; the count a number or a 0-d tensor >= 0 (kept on its device)."""
    if len(result) == 2:
        value, units = result
        if isinstance(units, torch.Tensor) and units.dim() == 0 and not units.requires_grad:
            return value, units.detach()
        if isinstance(units, (int, float, np.number)) and not isinstance(units, bool) and units >= 0:
            return value, float(units)
    raise TrainingError(
        f"step(model, batch) returned a tuple of {len(result)} ({', '.join(type(v).__name__ for v in result)}); "
        "return the mean loss, or (mean loss, count) with count a number or a 0-d tensor of the units the loss "
        "is the mean over (e.g. (labels != -100).sum() non-padding tokens)."
    )


def count_weighting(params: Any, losses: list[torch.Tensor], units: list[Any], dist: Any,
                    device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For ``step -> (loss, count)`` windows, whose micro-batches were backpropagated as ``loss * count``:
    scale the accumulated gradients so that they are those of the window's mean over all its units on all
    ranks (DDP averages over ranks, hence ``world_size``; the global count takes one all-reduce of a
    scalar). Returns, as tensors on ``device`` (no host sync), the window's loss (this rank's share of the
    global mean, as for row-weighted windows), the scale that turns it back into this rank's sum of
    loss x units, and this rank's units."""
    if len(units) != len(losses):
        raise TrainingError("step(model, batch) returned (loss, count) for some batches and a bare loss for "
                            "others in one accumulation window; return (loss, count) for every batch.")
    counts = torch.stack([torch.as_tensor(u, dtype=torch.float64).to(device) for u in units])
    local = counts.sum()
    total = dist.all_reduce_sum(local.clone()) if dist.enabled else local
    per_unit = torch.where(total > 0, 1.0 / total.clamp_min(1e-300), torch.zeros_like(total))
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        torch._foreach_mul_(grads, (per_unit * dist.world_size).to(grads[0].dtype))
    local_sum = (torch.stack(losses).to(torch.float64) * counts).sum()
    return local_sum * per_unit * dist.world_size, total / dist.world_size, local


def host_numbers(values: list[Any]) -> list[float]:
    """Plain floats of numbers and 0-d tensors, with one device sync for all the tensors.

    >>> host_numbers([2, torch.tensor(3.5)])
    [2.0, 3.5]
    """
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        return [float(v) for v in values]
    host = iter(torch.stack([t.to(torch.float64).to(tensors[0].device) for t in tensors]).tolist())
    return [next(host) if isinstance(v, torch.Tensor) else float(v) for v in values]


def describe(batch: Any, name: str = "") -> str:
    """A short description of a nested batch: names, dtypes and shapes.

    >>> describe((torch.zeros(4, 3), np.zeros(4, dtype=np.int64)))
    'x float32 (4, 3), y int64 (4,)'
    """
    if isinstance(batch, (tuple, list)) and not hasattr(batch, "_fields"):
        names = ["x", "y"] if len(batch) == 2 and not name else [f"{name}[{i}]" for i in range(len(batch))]
        return ", ".join(describe(v, n) for v, n in zip(batch, names))
    if isinstance(batch, dict):
        return ", ".join(describe(v, f"{name}.{k}" if name else str(k)) for k, v in batch.items())
    if isinstance(batch, torch.Tensor):
        return f"{name} {str(batch.dtype).replace('torch.', '')} {tuple(batch.shape)}".strip()
    if isinstance(batch, np.ndarray):
        return f"{name} {batch.dtype} {batch.shape}".strip()
    return f"{name} {type(batch).__name__}".strip()


def global_examples(train: Any, first_batch: int, num_batches: int) -> int:
    """Examples in global batches ``first_batch ..`` of an epoch, over all ranks, with no communication:
    Batches cuts every epoch into global batches of ``global_batch_size`` (the last one partial).

    >>> import numpy as np
    >>> from cleanfit.data.batches import Batches
    >>> global_examples(Batches(np.arange(41), 5, world_size=2, rank=0), 3, 2)  # batches of 10, 10, 10, 10, 1
    11
    """
    n, size = train.num_examples, train.global_batch_size
    return sum(min(size, n - j * size) for j in range(first_batch, first_batch + num_batches))
