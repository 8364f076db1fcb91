"""Dropout whose masks do not depend on the number of processes (the pipeline's MLP).

``nn.Dropout`` draws each rank's mask from that rank's own generator, so under torchrun the same config
trains a different run on 1 and on N processes. :class:`GlobalBatchDropout` draws the mask of the whole
*global* batch from a generator keyed by ``(seed, forward counter, layer)`` and each rank keeps the rows of
its own slice (the cut of :class:`cleanfit.data.Batches`: contiguous rank slices, a partial last global
batch split as evenly as possible). The counter is a registered buffer, so a checkpoint holds it and a
resumed run draws the masks the uninterrupted run drew.

>>> import torch
>>> layer = GlobalBatchDropout(0.5, seed=0)
>>> out = layer(torch.ones(2, 4))
>>> sorted(set(out.flatten().tolist())) in ([0.0, 2.0], [0.0], [2.0]), int(layer.counter)
(True, 1)
>>> layer.eval()(torch.ones(2, 4)).tolist()  # identity in eval mode
[[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]

Rank 1 of 2 keeps exactly the rows of its slice of the mask one process draws for the global batch:

>>> x = torch.ones(4, 3)
>>> one = GlobalBatchDropout(0.5, seed=3, layout=(10, 4))
>>> two = GlobalBatchDropout(0.5, seed=3, layout=(10, 4), rank=1, world_size=2)
>>> torch.equal(one(x)[2:4], two(x[2:4]))
True
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cleanfit._util.ranks import world
from cleanfit.data.batches import Batches


def rank_rows(batch: int, layout: tuple[int, int], rank: int, world_size: int) -> tuple[int, int, int]:
    """``(global_size, lo, hi)``: the size of global batch ``batch`` of an epoch and this rank's rows of it.

    ``layout`` is ``(examples per epoch, global batch size)``; the cut is :class:`~cleanfit.data.Batches`'s own.

    >>> [rank_rows(2, (10, 4), r, 3) for r in range(3)]  # the last batch holds 2 rows: rank 2 gets none
    [(2, 0, 1), (2, 1, 2), (2, 2, 2)]
    """
    n, global_batch = layout
    batches = -(-n // global_batch)
    j = batch % batches
    lo, hi = next(Batches._rank_slices(j, j + 1, n, global_batch, rank, world_size))
    start = j * global_batch
    return min(global_batch, n - start), lo - start, hi - start


class GlobalBatchDropout(nn.Module):
    """``nn.Dropout(p)`` with masks drawn per global batch, the same for any number of processes.

    ``layout = (train_rows, global_batch)`` says how each epoch is cut (as the pipeline's
    :class:`~cleanfit.data.Batches` cut it); the ``k``-th training forward is batch ``k % batches_per_epoch``
    of its epoch. Without a layout, or for a batch whose size does not fit it (the model reused on other
    data), the local batch is taken as the whole batch, and under N processes each rank's mask is its own.
    ``rank``/``world_size`` default to :func:`cleanfit._util.ranks.world` at each forward.
    """

    def __init__(self, p: float, *, seed: int = 0, layer: int = 0, layout: tuple[int, int] | None = None,
                 rank: int | None = None, world_size: int | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p!r}")
        self.p, self.seed, self.layer, self.layout = float(p), int(seed), int(layer), layout
        self._rank, self._world_size = rank, world_size
        self.register_buffer("counter", torch.zeros((), dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        step = int(self.counter)
        self.counter += 1
        size, lo, hi, rank = self._rows(step, len(x))
        generator = torch.Generator().manual_seed(_key(self.seed, step, self.layer, rank))
        keep = torch.empty((size, *x.shape[1:])).bernoulli_(1.0 - self.p, generator=generator)[lo:hi]
        return x * keep.to(device=x.device, dtype=x.dtype) * (1.0 / (1.0 - self.p))

    def _rows(self, step: int, rows: int) -> tuple[int, int, int, int]:
        """``(global size, lo, hi, key rank)``; the key rank is -1 when the mask is the global batch's."""
        default_rank, default_world = world()
        rank = default_rank if self._rank is None else self._rank
        world_size = default_world if self._world_size is None else self._world_size
        if self.layout is not None:
            size, lo, hi = rank_rows(step, self.layout, rank, world_size)
            if hi - lo == rows:
                return size, lo, hi, -1
        return rows, 0, rows, (-1 if world_size == 1 else rank)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # a model.pt saved before the counter existed (nn.Dropout had no state) still loads
        state_dict.setdefault(prefix + "counter", self.counter.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"p={self.p}, seed={self.seed}, layer={self.layer}, layout={self.layout}"


def _key(seed: int, step: int, layer: int, rank: int) -> int:
    """A 63-bit generator seed from the key (NumPy's SeedSequence mixes it)."""
    words = np.random.SeedSequence([seed, step, layer, rank + 1]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


__all__ = ["GlobalBatchDropout", "rank_rows"]
