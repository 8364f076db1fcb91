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
) -> tuple[torch.Tensor, torch.Tensor | None, Any]:
    """``(mean loss, outputs or None, targets or None)`` of one batch, with readable shape errors.

    A batch with no examples (a rank's share of a tiny last global batch under DDP) still runs the
    model, so that DDP sees the same forward/backward on every rank, and gives a zero loss.
    """
    try:
        if step is not None:
            value, outputs, targets = step(net, batch), None, None
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
    return value, outputs, targets


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
