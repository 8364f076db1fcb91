"""Batches: shuffled, seeded, shardable and resumable mini-batches.

The order of epoch ``e`` is a pure function of ``(seed, e, n)``:
``np.random.Generator(np.random.PCG64(seed).jumped(e)).permutation(n)``. Epoch 0 is therefore
``np.random.default_rng(seed).permutation(n)``:

>>> import numpy as np
>>> X = np.arange(10).reshape(10, 1); y = np.arange(10)
>>> for xb, yb in Batches((X, y), 4, seed=0):
...     print(yb)
[4 6 2 7]
[3 5 9 0]
[8 1]

Iterating again, without :meth:`Batches.set_epoch`, goes on to the next epoch, with a new order:

>>> b = Batches(y, 4, seed=0)
>>> [batch.tolist() for batch in b][0], [batch.tolist() for batch in b][0]
([4, 6, 2, 7], [3, 6, 9, 5])

The position is a few integers; a restored :class:`Batches` yields the exact next batch:

>>> b = Batches(y, 4, seed=0); it = iter(b); first = next(it)
>>> resumed = Batches(y, 4, seed=0); resumed.load_state_dict(b.state_dict())
>>> next(iter(resumed)).tolist()
[3, 5, 9, 0]

With ``world_size`` ranks, each global batch of ``batch_size * world_size`` examples is cut into
one slice per rank, so the global sequence does not depend on the number of ranks:

>>> [batch.tolist() for batch in Batches(y, 2, seed=0, rank=1, world_size=2)]
[[2, 7], [9, 0], [1]]
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Callable, Iterator

import numpy as np
import torch

from cleanfit._util.args import check_seed
from cleanfit._util.args import is_int as _is_int
from cleanfit._util.ranks import world as _env_world
from cleanfit.data.orders import BlockOrder, FeistelOrder
from cleanfit.data.sources import _DatasetSource, as_source, batch_len
from cleanfit.data.workers import Workers
from cleanfit.errors import DataError

__all__ = ["Batches", "batch_len", "epoch_order"]


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled order of epoch ``epoch``: a permutation of ``range(n)`` (int64)."""
    return np.random.Generator(np.random.PCG64(seed).jumped(epoch)).permutation(n)


class Batches:
    """Mini-batches of ``data`` in a seeded order that is the same on every machine.

    ``data`` is one array/tensor, a tuple/list/dict of arrays/tensors with equal first dimension,
    an ``np.memmap``, or a map-style torch ``Dataset``; batches keep that structure and array type
    (a pandas Series/DataFrame or a list of plain values such as ``[0.5, 1.5]`` gives NumPy batches).
    ``shuffle=False`` keeps the stored order; ``shuffle="feistel"`` uses an O(1)-memory keyed
    bijection instead of a stored permutation (for n around 10^9); ``shuffle="blocks"`` is the
    two-level block shuffle of out-of-core sources (:mod:`cleanfit.data.outofcore`). Every example
    appears exactly once per epoch; the last batch is partial unless ``drop_last``.

    Iteration continues from the current position: once an epoch's batches have all been taken
    (the iterator exhausted, or ``len(b)`` batches drawn), the next iteration is the next epoch;
    :meth:`set_epoch` starts epoch ``e`` from its first batch. One :class:`Batches` serves one loop
    at a time.

    ``rank``/``world_size`` default to the initialised ``torch.distributed`` process group, else
    torchrun's ``RANK``/``WORLD_SIZE`` environment variables, else 0/1, resolved when iteration
    starts. A last, partial global batch is split as evenly as possible (rank sizes differ by at
    most one; a rank may get an empty batch), so every rank yields the same number of batches and
    no example is duplicated.

    For a map-style Dataset, ``collate(items) -> batch`` builds each batch (default: torch's
    ``default_collate``), and ``workers=N`` loads and collates batches in ``N`` persistent worker processes
    (torch's DataLoader machinery; ``pin_memory=True`` pins them), in the same order and with the same
    contents as ``workers=0``. While ``__getitem__(i)`` runs, Python's ``random``, NumPy's global RNG and
    torch's CPU generator are seeded from ``(seed, epoch, i)`` and :func:`cleanfit.example_rng` gives a
    Generator from that key; the main process's RNG streams are left as they were. In-memory arrays are
    sliced in this process whatever ``workers`` says (a warning notes it). :meth:`close` stops the workers.
    """

    def __init__(
        self,
        data: Any,
        batch_size: int,
        *,
        shuffle: bool | str = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        collate: Callable[[list[Any]], Any] | None = None,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> None:
        if not _is_int(batch_size) or batch_size < 1:
            raise DataError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        check_seed(seed, "Batches")
        if world_size is not None and (not _is_int(world_size) or world_size < 1):
            raise DataError(f"world_size must be an integer >= 1, got {world_size!r}")
        if rank is not None:
            limit = world_size if world_size is not None else _env_world()[1]
            if not _is_int(rank) or not 0 <= rank < limit:
                raise DataError(f"rank={rank!r} is outside [0, world_size={limit}); pass a rank in that range")
        if shuffle not in _SHUFFLES:
            raise DataError(f"shuffle={shuffle!r} is not one of True, False, 'feistel', 'blocks'")
        if not _is_int(workers) or workers < 0:
            raise DataError(f"workers must be an integer >= 0 (worker processes; 0 loads in this process), got {workers!r}")
        if collate is not None and not callable(collate):
            raise DataError(f"collate must be a function items -> batch, got {type(collate).__name__}")
        self._source = as_source(data, collate=collate, seed=seed)
        self._dataset = isinstance(self._source, _DatasetSource)
        if collate is not None and not self._dataset:
            raise DataError("collate= is for map-style Datasets (it turns their items into a batch); in-memory "
                            f"arrays are batched by slicing: drop collate= for {type(data).__name__} data")
        if workers and not self._dataset:
            _note_in_memory(type(data).__name__)
            workers = 0
        self.workers = int(workers)
        self.pin_memory = bool(pin_memory)
        self._workers: Workers | None = None
        if shuffle == "blocks" and not hasattr(self._source, "block_sizes"):
            raise DataError(
                "shuffle='blocks' needs a block source (cleanfit.data.outofcore.ParquetSource or NpySource); "
                f"got {type(data).__name__}"
            )
        self.batch_size = int(batch_size)
        self.shuffle = shuffle if isinstance(shuffle, str) else bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self._rank = None if rank is None else int(rank)
        self._world_size = None if world_size is None else int(world_size)
        self._epoch = 0
        self._position = 0
        self._order_cache: tuple[int, np.ndarray] | None = None

    # -- shape of an epoch -------------------------------------------------------------------
    @property
    def num_examples(self) -> int:
        """The number of examples in the data (all ranks together)."""
        return len(self._source)

    @property
    def rank(self) -> int:
        return self._rank if self._rank is not None else _env_world()[0]

    @property
    def world_size(self) -> int:
        return self._world_size if self._world_size is not None else _env_world()[1]

    @property
    def global_batch_size(self) -> int:
        """Examples per optimizer-visible batch over all ranks: ``batch_size * world_size``."""
        return self.batch_size * self.world_size

    @property
    def epoch(self) -> int:
        """The epoch the next batch belongs to."""
        return self._epoch

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return self._num_batches(self.global_batch_size)

    def _num_batches(self, global_batch: int) -> int:
        n = self.num_examples
        return n // global_batch if self.drop_last else -(-n // global_batch)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch."""
        if not _is_int(epoch) or epoch < 0:
            raise DataError(f"epoch must be a non-negative integer, got {epoch!r}")
        self._epoch = int(epoch)
        self._position = 0

    # -- iteration ---------------------------------------------------------------------------
    def order(self, epoch: int | None = None) -> Any:
        """The order of all examples in ``epoch`` (default: the current one), before sharding.

        An int64 array, or for ``shuffle="feistel" | "blocks"`` an object computed slice by slice.
        """
        epoch = self._epoch if epoch is None else epoch
        if self._order_cache is None or self._order_cache[0] != epoch:
            n = self.num_examples
            if self.shuffle == "feistel":
                order: Any = FeistelOrder(self.seed, epoch, n)
            elif self.shuffle == "blocks":
                src = self._source
                order = BlockOrder(self.seed, epoch, src.block_sizes, src.buffer_blocks)
            elif self.shuffle:
                order = epoch_order(self.seed, epoch, n)
            else:
                order = np.arange(n, dtype=np.int64)
            self._order_cache = (epoch, order)
        return self._order_cache[1]

    def __iter__(self) -> Iterator[Any]:
        rank, world = self.rank, self.world_size
        if rank >= world:
            raise DataError(f"rank={rank} is outside [0, world_size={world}); pass a rank in that range")
        n, global_batch = self.num_examples, self.batch_size * world
        num_batches = self._num_batches(global_batch)
        if 0 < num_batches <= self._position:  # the last loop took every batch but never asked for more
            self._epoch, self._position = self._epoch + 1, 0
        order = self.order()
        index_device = getattr(self._source, "index_device", None)
        if isinstance(order, np.ndarray) and index_device is not None:
            # all tensors on one device: index them with slices of one index tensor already there
            order = torch.from_numpy(order).to(index_device)
        first = self._position
        slices = (order[lo:hi] for lo, hi in self._rank_slices(first, num_batches, n, global_batch, rank, world))
        if self._dataset:
            epoch = self._epoch
            if self.workers:
                if self._workers is None:
                    self._workers = Workers(self._source, self.workers, pin_memory=self.pin_memory)
                batches = self._workers.run((epoch, indices) for indices in slices)
            else:
                fetch = self._source.fetch
                batches = (fetch(epoch, indices) for indices in slices)
        else:
            batches = map(self._source.take, slices)
        for j, batch in enumerate(batches, start=first):
            self._position = j + 1
            yield batch
        self._epoch += 1
        self._position = 0

    @staticmethod
    def _rank_slices(first: int, num_batches: int, n: int, global_batch: int, rank: int,
                     world: int) -> Iterator[tuple[int, int]]:
        """``(lo, hi)`` in the epoch's order of this rank's share of global batches ``first..``."""
        for j in range(first, num_batches):
            start = j * global_batch
            size = min(global_batch, n - start)
            base, extra = divmod(size, world)
            lo = start + rank * base + min(rank, extra)
            yield lo, lo + base + (1 if rank < extra else 0)

    def close(self) -> None:
        """Stop the worker processes (``workers=N``) now; the next iteration starts new ones."""
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def __getstate__(self) -> dict[str, Any]:  # a copy (or a pickle) of Batches starts its own workers
        state = self.__dict__.copy()
        state["_workers"] = None
        return state

    # -- resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int | bool | str]:
        """The position as plain integers: enough to resume at the exact next batch, in O(1)."""
        return {
            "epoch": self._epoch,
            "position": self._position,
            "seed": self.seed,
            "num_examples": self.num_examples,
            "global_batch_size": self.global_batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position saved by :meth:`state_dict` for the same data, seed and global batch."""
        if not isinstance(state, Mapping):
            raise DataError(f"Batches.load_state_dict({state!r}): expected the dict that Batches.state_dict() "
                            "returned (with 'epoch' and 'position')")
        expected = self.state_dict()
        for key in ("num_examples", "seed", "shuffle", "drop_last", "global_batch_size"):
            if key in state and state[key] != expected[key]:
                raise DataError(
                    f"this Batches state was saved with {key}={state[key]!r}, but these Batches have "
                    f"{key}={expected[key]!r}; resume with the same data, seed and global batch size "
                    "(batch_size * world_size)"
                )
        try:
            epoch, position = state["epoch"], state["position"]
        except (KeyError, TypeError) as exc:
            raise DataError(f"not a Batches state (needs integer 'epoch' and 'position'): {state!r}") from exc
        if not (_is_int(epoch) and _is_int(position)):
            raise DataError(f"not a Batches state (needs integer 'epoch' and 'position'): {state!r}")
        epoch, position = int(epoch), int(position)
        if epoch < 0 or not 0 <= position <= len(self):
            raise DataError(f"Batches state has epoch={epoch}, position={position}; position must be in [0, {len(self)}]")
        self._epoch, self._position = epoch, position

    def __repr__(self) -> str:
        return (
            f"Batches(num_examples={self.num_examples}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"seed={self.seed}, drop_last={self.drop_last}, rank={self.rank}, world_size={self.world_size}, "
            f"epoch={self._epoch}, position={self._position}" + (f", workers={self.workers})" if self.workers else ")")
        )


_SHUFFLES = (True, False, "feistel", "blocks")


def _note_in_memory(kind: str) -> None:
    """``workers`` on in-memory data: a note (shown once per place by Python's warning filter), not an error."""
    warnings.warn(f"Batches(workers=...) is ignored for in-memory {kind} data: slicing arrays in this process "
                      "is faster than sending batches from workers; workers= is for map-style Datasets whose "
                      "__getitem__ does real work (decoding, augmenting).", stacklevel=3)
