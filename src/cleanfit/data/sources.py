"""Sources: every kind of data :class:`~cleanfit.data.batches.Batches` accepts, behind one small interface.

A source knows its length and takes rows by an index array, returning them in the structure and
array type it was given (NumPy in, NumPy out; torch in, torch out)::

    >>> import numpy as np
    >>> src = as_source({"x": np.arange(6).reshape(3, 2), "y": np.array([0, 1, 0])})
    >>> len(src), src.take(np.array([2, 0]))["y"].tolist()
    (3, [0, 0])

In-memory arrays, tensors, ``np.memmap``, tuples/lists/dicts of those and map-style torch
``Dataset`` objects are adapted here; a pandas Series/DataFrame and a list of plain values
(``[0.5, 1.5, ...]``) give NumPy batches of their values; the out-of-core Parquet and block sources live in
:mod:`cleanfit.data.outofcore`.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from cleanfit.errors import DataError
from cleanfit.seeding import MainRngs, end_example, example_seed, example_seeds, load_examples, seed_example


@runtime_checkable
class Source(Protocol):
    """Anything with a length that can take rows by an int64 index array."""

    def __len__(self) -> int: ...

    def take(self, indices: np.ndarray) -> Any: ...


class _NumpySource:
    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def take(self, indices: np.ndarray) -> np.ndarray:
        return self.array[indices]


class _TensorSource:
    __slots__ = ("tensor", "index_device")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor
        self.index_device = tensor.device  # Batches hands over index tensors already on it

    def __len__(self) -> int:
        return self.tensor.shape[0]

    def take(self, indices: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(indices, np.ndarray):
            indices = torch.from_numpy(indices)
        return self.tensor.index_select(0, indices.to(self.tensor.device))


def _common_index_device(children: Any) -> torch.device | None:
    """The device every child takes index tensors on, when they all are tensors on one device."""
    devices = {getattr(child, "index_device", None) for child in children}
    return devices.pop() if len(devices) == 1 else None


class _SequenceSource:
    __slots__ = ("children", "rebuild", "index_device")

    def __init__(self, children: list[Any], rebuild: Any) -> None:
        self.children = children
        self.rebuild = rebuild
        self.index_device = _common_index_device(children)

    def __len__(self) -> int:
        return len(self.children[0])

    def take(self, indices: np.ndarray) -> Any:
        return self.rebuild([child.take(indices) for child in self.children])


class _DictSource:
    __slots__ = ("children", "index_device")

    def __init__(self, children: dict[Any, Any]) -> None:
        self.children = children
        self.index_device = _common_index_device(children.values())

    def __len__(self) -> int:
        return len(next(iter(self.children.values())))

    def take(self, indices: np.ndarray) -> dict[Any, Any]:
        return {key: child.take(indices) for key, child in self.children.items()}


class _DatasetSource:
    """A map-style torch ``Dataset``: one batched ``__getitems__`` call when it has one.

    :meth:`fetch` seeds the global RNGs from ``(seed, epoch, index)`` before each ``__getitem__`` (a
    ``__getitems__`` call is seeded once, from its first index) and collates the items; in the main
    process it leaves the caller's RNG streams as they were.
    """

    __slots__ = ("dataset", "collate", "seed", "_batched", "_empty", "_own_collate")

    def __init__(self, dataset: Any, collate: Any = None, seed: int = 0) -> None:
        self.dataset = dataset
        self._own_collate = collate is not None
        self.collate = default_collate if collate is None else collate
        self.seed = int(seed)
        self._batched = callable(getattr(dataset, "__getitems__", None))
        self._empty: Any = None

    def __len__(self) -> int:
        return len(self.dataset)

    def take(self, indices: np.ndarray) -> Any:
        """The items at ``indices``, collated, with the per-example seeds of epoch 0."""
        return self.fetch(0, indices)

    def fetch(self, epoch: int, indices: Any) -> Any:
        """The items at ``indices`` of ``epoch``, each loaded with its own seeds, collated."""
        if get_worker_info() is not None:  # a worker process: its RNG streams are nobody else's
            return self._fetch(epoch, indices)
        with MainRngs():
            return self._fetch(epoch, indices)

    def _fetch(self, epoch: int, indices: Any) -> Any:
        index_list = indices.tolist() if hasattr(indices, "tolist") else list(indices)
        if not index_list:  # a rank's share of a last, small global batch: same structure, 0 rows
            if self._empty is None:
                seed_example(example_seed(self.seed, epoch, 0))
                self._empty = _no_rows(self.collate([self.dataset[0]]))
            return self._empty
        dataset = self.dataset
        if self._batched:
            seed_example(example_seed(self.seed, epoch, index_list[0]))
            items = dataset.__getitems__(index_list)
            _check_items(items, len(index_list), dataset)
        else:
            keys = example_seeds(self.seed, epoch, indices if isinstance(indices, np.ndarray) else index_list)
            items = load_examples(dataset.__getitem__, index_list, keys, epoch)
        end_example()
        batch = self.collate(items)
        if self._own_collate:
            _check_rows(batch, len(items), self.collate)
        return batch


def _check_items(items: Any, expected: int, dataset: Any) -> None:
    if isinstance(items, list) and len(items) == expected:
        return
    what = f"a list of {len(items)} items" if isinstance(items, list) else f"a {type(items).__name__}"
    raise DataError(
        f"{type(dataset).__name__}.__getitems__ returned {what} for {expected} indices; it must return a list "
        "with one item per index (torch's DataLoader contract), which collate= then turns into a batch. Return "
        "[self[i] for i in indices] (or your batched read as a list of items), and build the batch in collate=."
    )


def _row_counts(batch: Any, path: str, out: list[tuple[str, int]]) -> None:
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        if batch.ndim >= 1:
            out.append((path, int(batch.shape[0])))
    elif isinstance(batch, Mapping):
        for key, value in batch.items():
            _row_counts(value, f"{path}[{key!r}]", out)
    elif isinstance(batch, (list, tuple)) and not all(isinstance(v, _SCALARS) for v in batch):
        for i, value in enumerate(batch):
            _row_counts(value, f"{path}[{i}]", out)


def _rows_agree(batch: Any, items: int) -> bool:
    """Every array of ``batch`` has ``items`` rows (the quick test; :func:`_row_counts` names the culprit)."""
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return batch.ndim == 0 or batch.shape[0] == items
    if isinstance(batch, Mapping):
        return all(_rows_agree(value, items) for value in batch.values())
    if isinstance(batch, (list, tuple)) and not all(isinstance(v, _SCALARS) for v in batch):
        return all(_rows_agree(value, items) for value in batch)
    return True


def _check_rows(batch: Any, items: int, collate: Any) -> None:
    """A collate's batch must hold one row per item in every array (batch_len and the Trainer count rows)."""
    if _rows_agree(batch, items):
        return
    counts: list[tuple[str, int]] = []
    _row_counts(batch, "batch", counts)
    wrong = next(((path, rows) for path, rows in counts if rows != items), None)
    if wrong is not None:
        name = getattr(collate, "__qualname__", type(collate).__name__)
        listed = ", ".join(f"{path}: {rows}" for path, rows in counts[:4])
        raise DataError(
            f"collate {name} returned arrays of mixed lengths for {items} items ({listed}); every array of a "
            "batch needs one row per example (pad sequences to the same length along dim 1, not dim 0); a "
            "per-batch total such as a token count belongs in a 0-d tensor, or in step(model, batch) -> (loss, count)."
        )


def _no_rows(batch: Any) -> Any:
    """``batch`` with every leaf cut to zero rows (tensors and arrays ``[:0]``, lists of values ``[]``)."""
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return batch[:0]
    if isinstance(batch, Mapping):
        return type(batch)({key: _no_rows(value) for key, value in batch.items()})
    if isinstance(batch, (list, tuple)):
        if all(isinstance(value, _SCALARS) for value in batch):  # a collated column of strings
            return type(batch)()
        parts = [_no_rows(value) for value in batch]
        return type(batch)(*parts) if hasattr(batch, "_fields") else type(batch)(parts)
    return batch


def as_source(data: Any, *, collate: Any = None, seed: int = 0) -> Any:
    """Adapt user data to a source; raise :class:`DataError` naming what does not fit. ``collate`` and
    ``seed`` are for map-style Datasets (the items' collate, the per-example seeds)."""
    source = _adapt(data, "data")
    if isinstance(source, _DatasetSource):
        source = _DatasetSource(source.dataset, collate, seed)
    if len(source) == 0:
        raise DataError("data is empty (0 examples); Batches needs at least one example")
    return source


def _adapt(data: Any, where: str) -> Any:
    if _is_pandas(data):  # before the Source check: a DataFrame has __len__ and take() of its own
        return _NumpySource(data.to_numpy())
    if isinstance(data, Source) and not isinstance(data, (np.ndarray, torch.Tensor)):
        return data
    if isinstance(data, torch.Tensor):
        if data.dim() == 0:
            raise DataError(f"{where} is a 0-d tensor; give at least one dimension of examples")
        return _TensorSource(data)
    if isinstance(data, np.ndarray):  # np.memmap included: indexing reads only the rows taken
        if data.ndim == 0:
            raise DataError(f"{where} is a 0-d array; give at least one dimension of examples")
        return _NumpySource(data)
    if isinstance(data, Mapping):
        if not data:
            raise DataError(f"{where} is an empty dict; give at least one array")
        children = {key: _adapt(value, f"{where}[{key!r}]") for key, value in data.items()}
        _check_lengths(children.items(), where)
        return _DictSource(children)
    if isinstance(data, (tuple, list)):
        if not data:
            raise DataError(f"{where} is an empty {type(data).__name__}; give at least one array")
        if all(isinstance(value, _SCALARS) for value in data):  # [1, 2, 3]: one column of values
            return _NumpySource(np.asarray(data))
        children = [_adapt(value, f"{where}[{i}]") for i, value in enumerate(data)]
        _check_lengths(enumerate(children), where)
        if isinstance(data, tuple) and hasattr(data, "_fields"):
            kind = type(data)
            return _SequenceSource(children, lambda parts: kind(*parts))
        return _SequenceSource(children, type(data))
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, (str, bytes)):
        return _DatasetSource(data)
    raise DataError(
        f"{where} of type {type(data).__name__} is not supported; give a NumPy array, a torch tensor, "
        "an np.memmap, a tuple/list/dict of those, or a map-style torch Dataset (__len__ + __getitem__)"
    )


_SCALARS = (numbers.Number, str, bytes, np.generic)


def _check_lengths(items: Any, where: str) -> None:
    lengths = [(key, len(child)) for key, child in items]
    first_key, first_len = lengths[0]
    for key, length in lengths[1:]:
        if length != first_len:
            raise DataError(
                f"arrays in {where} have different lengths: {where}[{first_key!r}] has {first_len} rows, "
                f"{where}[{key!r}] has {length}; every array needs one row per example"
            )


def _is_pandas(data: Any) -> bool:
    module = type(data).__module__  # "pandas" (pandas 3) or "pandas.core.frame" (older)
    return (module == "pandas" or module.startswith("pandas.")) and hasattr(data, "to_numpy")


def batch_len(batch: Any) -> int:
    """The number of examples in a batch of any structure (the first leaf's length).

    >>> batch_len((np.zeros((5, 2)), np.zeros(5)))
    5
    """
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return int(batch.shape[0])
    if isinstance(batch, Mapping):
        return batch_len(next(iter(batch.values())))
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
        if not batch or all(isinstance(value, _SCALARS) for value in batch):  # a column of values
            return len(batch)
        return batch_len(batch[0])
    raise DataError(f"cannot tell the number of examples in a batch of type {type(batch).__name__}")
