"""Out-of-core sources: data larger than RAM, read block by block.

A block source reads its data in blocks (Parquet row groups, or fixed runs of rows of a ``.npy``
file) and keeps at most ``2 * buffer_blocks`` decoded blocks in memory. Give it to
:class:`~cleanfit.data.batches.Batches` with ``shuffle="blocks"`` for the two-level shuffle (a
permutation of blocks, then of the rows within each buffer of ``buffer_blocks`` blocks), or with
``shuffle=False`` for a sequential pass; memory is bounded by the buffer, not the data::

    batches = Batches(ParquetSource("train.parquet", features=["a", "b"], target="y"),
                      256, shuffle="blocks", seed=0)

``prefetch(batches)`` reads ahead in a background thread.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cleanfit.data.devices import pin, to_device
from cleanfit.errors import DataError


class _BlockSource:
    """Shared machinery: map global rows to blocks, keep an LRU cache of decoded blocks."""

    block_sizes: np.ndarray
    buffer_blocks: int

    def _init_blocks(self, sizes: Sequence[int], buffer_blocks: int) -> None:
        if not _is_count(buffer_blocks):
            raise DataError(f"buffer_blocks must be an integer >= 1, got {buffer_blocks!r}")
        self.block_sizes = np.asarray(sizes, dtype=np.int64)
        self.block_starts = np.concatenate([[0], np.cumsum(self.block_sizes)])
        self.buffer_blocks = int(buffer_blocks)
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._capacity = 2 * self.buffer_blocks  # a global batch can straddle two buffers
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.block_starts[-1])

    def _read_block(self, block: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _block(self, block: int) -> Any:
        with self._lock:
            cached = self._cache.get(block)
            if cached is not None:
                self._cache.move_to_end(block)
                return cached
        data = self._read_block(block)
        with self._lock:
            self._cache[block] = data
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        return data

    def _gather(self, indices: np.ndarray, pick: Any, concat: Any) -> tuple[Any, np.ndarray | None]:
        """Rows ``indices``, grouped by block (each block read once), and the permutation that puts
        them back in the order asked for (None when they already are)."""
        indices = np.asarray(indices, dtype=np.int64)
        blocks = np.searchsorted(self.block_starts, indices, side="right") - 1
        if len(blocks) and blocks.min() == blocks.max():  # the common case: one block
            block = int(blocks[0])
            return pick(self._block(block), indices - self.block_starts[block]), None
        order = np.argsort(blocks, kind="stable")
        sorted_blocks = blocks[order]
        cuts = np.flatnonzero(np.diff(sorted_blocks)) + 1
        pieces = []
        for group in np.split(order, cuts):
            if len(group) == 0:
                continue
            block = int(blocks[group[0]])
            pieces.append(pick(self._block(block), indices[group] - self.block_starts[block]))
        gathered = concat(pieces) if pieces else None
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return gathered, inverse


class ParquetSource(_BlockSource):
    """A Parquet file (or several) read one row group at a time.

    Batches are a dict of NumPy columns (``columns``, default all), or with ``features`` and
    ``target`` a tuple ``(X float32 [batch, features], y)``.
    """

    def __init__(
        self,
        path: str | Path | Sequence[str | Path],
        *,
        columns: Sequence[str] | None = None,
        features: Sequence[str] | None = None,
        target: str | None = None,
        buffer_blocks: int = 8,
    ) -> None:
        import pyarrow.parquet as pq

        paths = [Path(p) for p in ([path] if isinstance(path, (str, Path)) else path)]
        if paths and paths[0].is_dir():
            paths = sorted(paths[0].glob("*.parquet"))
        if not paths:
            raise DataError(f"no Parquet files at {path}")
        self._files, self._groups, sizes = [], [], []
        for p in paths:
            if not p.exists():
                raise DataError(f"Parquet file {p} does not exist")
            try:
                pf = pq.ParquetFile(p)
            except Exception as exc:  # pyarrow raises several types for a bad file
                raise DataError(f"cannot read {p} as Parquet: {exc}") from exc
            for g in range(pf.metadata.num_row_groups):
                self._groups.append((len(self._files), g))
                sizes.append(pf.metadata.row_group(g).num_rows)
            self._files.append(pf)
        names = self._files[0].schema_arrow.names
        if features is not None or target is not None:
            if features is None or target is None:
                raise DataError("give both features= and target= (or neither, and columns=)")
            columns = [*features, target]
        self.columns = list(columns) if columns is not None else names
        if not self.columns or (features is not None and not list(features)):
            raise DataError(f"ParquetSource({paths[0]}): no columns to read; name at least one (columns= or features=)")
        for p, pf in zip(paths, self._files):  # every file: a missing column would fail mid-epoch
            schema = pf.schema_arrow
            missing = [c for c in self.columns if c not in schema.names]
            if missing:
                raise DataError(f"columns {missing} are not in {p}; it has {schema.names}")
            if features is not None:
                _check_numeric_features(schema, features, p)
        self.features, self.target = (list(features), target) if features is not None else (None, None)
        self._init_blocks(sizes, buffer_blocks)

    def _read_block(self, block: int) -> dict[str, np.ndarray]:
        file, group = self._groups[block]
        table = self._files[file].read_row_group(group, columns=self.columns)
        if self.features is None:
            return {name: table.column(name).to_numpy() for name in self.columns}
        x = np.stack([table.column(f).to_numpy().astype(np.float32, copy=False) for f in self.features], axis=1)
        return {"x": x, "y": table.column(self.target).to_numpy()}  # decoded once per block, not per batch

    def take(self, indices: np.ndarray) -> Any:
        if self.features is None:
            return _take_keys(self, indices, self.columns)
        gathered = _take_keys(self, indices, ["x", "y"])
        return gathered["x"], gathered["y"]


def _take_keys(source: _BlockSource, indices: np.ndarray, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The rows ``indices`` of a block source whose blocks are dicts of arrays, as one dict, in the order asked."""
    pick = lambda block, rows: {k: block[k][rows] for k in keys}  # noqa: E731
    concat = lambda parts: {k: np.concatenate([p[k] for p in parts]) for k in keys}  # noqa: E731
    gathered, inverse = source._gather(indices, pick, concat)
    if gathered is None:
        block = source._block(0)
        return {k: block[k][:0] for k in keys}
    if inverse is not None:
        gathered = {k: v[inverse] for k, v in gathered.items()}
    return gathered


class ParquetPartSource(_BlockSource):
    """The rows of one part of a Parquet table (train, val or test), one row group at a time.

    ``part`` holds one small integer per row of the table (the row split: 0 train, 1 val, 2 test); the blocks
    are the table's row groups, each reduced to its rows with ``part == keep`` (row groups with none are left
    out), read as a pandas frame of ``columns`` and turned into ``(x, y)`` arrays by ``transform(frame)``
    (the fitted preprocessing). Only ``part`` is held for the whole table; decoded blocks are bounded by
    ``2 * buffer_blocks`` as for :class:`ParquetSource`::

        train = ParquetPartSource("big.parquet", part, 0, columns=["a", "y"], transform=to_xy)
        batches = Batches(train, 256, shuffle="blocks", seed=0)
    """

    def __init__(self, path: str | Path | Sequence[str | Path], part: np.ndarray, keep: int, *,
                 columns: Sequence[str], transform: Any, buffer_blocks: int = 8) -> None:
        self._parquet = ParquetSource(path, columns=columns, buffer_blocks=1)
        starts = self._parquet.block_starts
        if int(starts[-1]) != len(part):
            raise DataError(f"the split has {len(part):,} rows but the Parquet table has {int(starts[-1]):,}; "
                            "the files changed since the split was made: split them again")
        self.part, self.keep, self.transform = part, int(keep), transform
        counts = [int(np.count_nonzero(part[starts[g]:starts[g + 1]] == keep)) for g in range(len(starts) - 1)]
        self._kept = [g for g, c in enumerate(counts) if c]  # the table's row group of each block
        self._init_blocks([counts[g] for g in self._kept] or [0], buffer_blocks)

    def _read_block(self, block: int) -> dict[str, np.ndarray]:
        import pyarrow as pa

        source, g = self._parquet, self._kept[block]
        file, group = source._groups[g]
        table = source._files[file].read_row_group(group, columns=source.columns)
        mask = self.part[source.block_starts[g]:source.block_starts[g + 1]] == self.keep
        x, y = self.transform(table.filter(pa.array(mask)).to_pandas())
        return {"x": x, "y": y}

    def take(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gathered = _take_keys(self, indices, ["x", "y"])
        return gathered["x"], gathered["y"]


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 1


def _check_numeric_features(schema: Any, features: Sequence[str], path: Path) -> None:
    """Features become one float32 matrix: each must be a number or a bool in the file."""
    import pyarrow.types as pat

    for name in features:
        kind = schema.field(name).type
        if not (pat.is_integer(kind) or pat.is_floating(kind) or pat.is_boolean(kind) or pat.is_decimal(kind)):
            raise DataError(
                f"feature column {name!r} in {path} holds {kind}, not numbers: features= become one float32 "
                f"matrix; encode it as numbers first, or read it with columns= (a dict of NumPy columns)"
            )


class NpySource(_BlockSource):
    """A ``.npy`` file read in blocks of ``block_rows`` rows with plain file reads (no mmap, so
    the pages read do not stay in this process's memory)."""

    def __init__(self, path: str | Path, *, block_rows: int = 65536, buffer_blocks: int = 8) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(f)
                self._offset = f.tell()
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {self.path} as a .npy file: {exc}") from exc
        if fortran or dtype.hasobject or not shape:
            raise DataError(f"{self.path} must hold a C-ordered numeric array with at least one dimension")
        if not _is_count(block_rows):
            raise DataError(f"block_rows must be an integer >= 1, got {block_rows!r}")
        self.shape, self.dtype = shape, dtype
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        n = shape[0]
        expected = self._offset + n * self._row_bytes
        size = self.path.stat().st_size
        if size < expected:
            raise DataError(
                f"{self.path} is truncated: its header promises {n} rows of shape {tuple(shape[1:])} "
                f"({expected} bytes) but the file has {size} bytes; write it again"
            )
        sizes = [min(block_rows, n - s) for s in range(0, n, block_rows)]
        self._block_rows = block_rows
        self._init_blocks(sizes, buffer_blocks)

    def _read_block(self, block: int) -> np.ndarray:
        rows = int(self.block_sizes[block])
        out = np.empty((rows, *self.shape[1:]), dtype=self.dtype)
        with open(self.path, "rb") as f:
            f.seek(self._offset + block * self._block_rows * self._row_bytes)
            got = f.readinto(memoryview(out).cast("B"))
        if got != out.nbytes:  # the file shrank after it was opened
            raise DataError(f"{self.path}: block {block} is cut short ({got} of {out.nbytes} bytes); write the file again")
        return out

    def take(self, indices: np.ndarray) -> np.ndarray:
        gathered, inverse = self._gather(indices, lambda block, rows: block[rows], np.concatenate)
        if gathered is None:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        return gathered if inverse is None else gathered[inverse]


def prefetch(batches: Iterable[Any], depth: int = 2, device: Any = None) -> Iterator[Any]:
    """Iterate ``batches`` in a background thread, ``depth`` batches ahead (moved to ``device`` if given).

    The thread reads ahead, so a :class:`~cleanfit.data.batches.Batches` being prefetched has moved up to
    ``depth + 1`` batches past the one the loop holds: ``batches.state_dict()`` taken mid-loop would
    resume after batches the loop never saw. Checkpoint between epochs, or without prefetching.

    >>> list(prefetch(iter([1, 2, 3])))
    [1, 2, 3]
    """

    done = object()
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: Any) -> bool:
        """Hand ``item`` over; False when the consumer has gone (so this thread never blocks for good)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in batches:
                if device is not None:
                    batch = to_device(pin(batch), device)
                if not put(batch):
                    return
            put(done)
        except BaseException as exc:  # hand the error to the consumer
            put(exc)

    thread = threading.Thread(target=work, name="cleanfit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
