"""Epoch orders that are computed piece by piece instead of held in memory.

Both are pure functions of ``(seed, epoch, n)`` (and, for blocks, the block layout), sliced with
``order[lo:hi]`` exactly like the NumPy permutation that :class:`~cleanfit.data.batches.Batches` uses by
default, so sharding and resume work the same way on top of them.

``FeistelOrder``: a keyed bijection of ``[0, n)`` in O(1) memory, for n around 10^9 and beyond.
A balanced Feistel network permutes ``[0, 4^k)`` (the smallest power of four >= n) and cycle-walking
maps values >= n back into range; each output is still a bijection of ``[0, n)``.

>>> order = FeistelOrder(seed=0, epoch=0, n=10)
>>> sorted(order[0:10].tolist()) == list(range(10))
True

``BlockOrder``: the two-level shuffle for data read in blocks (Parquet row groups, file chunks).
The blocks are permuted, consecutive runs of ``buffer_blocks`` blocks form a buffer, and the rows of
each buffer are permuted. Memory is bounded by one buffer of rows, and a row can move at most about a
buffer away from its block's new place: the order is as random as the buffer is large.

>>> order = BlockOrder(seed=0, epoch=0, block_sizes=[3, 3, 4], buffer_blocks=2)
>>> sorted(order[0:10].tolist()) == list(range(10))
True
"""

from __future__ import annotations

import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(x: np.ndarray, key: np.uint64) -> np.ndarray:
    """A 64-bit mixing function (splitmix64 finaliser) of ``x ^ key``; vectorised, wrapping."""
    z = x ^ key
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class FeistelOrder:
    """A pseudo-random permutation of ``[0, n)`` keyed by ``(seed, epoch)``; O(1) memory."""

    rounds = 6

    def __init__(self, seed: int, epoch: int, n: int) -> None:
        self.n = int(n)
        bits = max(2, int(np.ceil(np.log2(max(n, 2)))))
        self.half = (bits + 1) // 2
        self.mask = np.uint64((1 << self.half) - 1)
        keys = np.random.Generator(np.random.PCG64(seed).jumped(epoch)).integers(0, 2**63, size=self.rounds)
        self.keys = keys.astype(np.uint64)

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        half = np.uint64(self.half)
        left, right = x >> half, x & self.mask
        with np.errstate(over="ignore"):
            for key in self.keys:
                left, right = right, left ^ (_mix(right, key) & self.mask)
        return (left << half) | right

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, step = index.indices(self.n)
        x = np.arange(start, stop, step, dtype=np.uint64)
        out = self._encrypt(x)
        outside = out >= np.uint64(self.n)
        while outside.any():  # cycle-walk back into [0, n): expected < 4 rounds since 4^k < 4n
            out[outside] = self._encrypt(out[outside])
            outside = out >= np.uint64(self.n)
        return out.astype(np.int64)


class BlockOrder:
    """The two-level (blocks, then rows within a buffer of blocks) shuffle of one epoch."""

    def __init__(self, seed: int, epoch: int, block_sizes: list[int] | np.ndarray, buffer_blocks: int) -> None:
        sizes = np.asarray(block_sizes, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.n = int(sizes.sum())
        self.seed, self.epoch = int(seed), int(epoch)
        rng = np.random.Generator(np.random.PCG64(seed).jumped(epoch))
        self.block_perm = rng.permutation(len(sizes))
        self.buffers = [self.block_perm[i : i + buffer_blocks] for i in range(0, len(sizes), buffer_blocks)]
        buffer_sizes = np.array([sizes[b].sum() for b in self.buffers], dtype=np.int64)
        self.buffer_starts = np.concatenate([[0], np.cumsum(buffer_sizes)])
        self.sizes = sizes
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return self.n

    def _buffer(self, b: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != b:
            rows = np.concatenate([np.arange(self.starts[k], self.starts[k] + self.sizes[k]) for k in self.buffers[b]])
            rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch, b]))
            self._cache = (b, rows[rng.permutation(len(rows))])
        return self._cache[1]

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, _ = index.indices(self.n)
        if stop <= start:
            return np.empty(0, dtype=np.int64)
        first = int(np.searchsorted(self.buffer_starts, start, side="right")) - 1
        last = int(np.searchsorted(self.buffer_starts, stop - 1, side="right")) - 1
        parts = []
        for b in range(first, last + 1):
            base = self.buffer_starts[b]
            lo, hi = max(start, base) - base, min(stop, self.buffer_starts[b + 1]) - base
            parts.append(self._buffer(b)[lo:hi])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
