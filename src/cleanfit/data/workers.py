"""Parallel loading for :class:`~cleanfit.data.batches.Batches`: Dataset batches fetched in worker processes.

Built on torch's own DataLoader worker machinery, not a process pool of our own: a ``DataLoader`` with
``batch_size=None`` over a sampler whose items are the batches Batches decided, ``(epoch, [indices])``.
Each worker runs :meth:`_DatasetSource.fetch` on one such key (the per-example seeding and the collate
happen there), results come back in order, and the workers are persistent (started on the first
iteration, kept alive across epochs, an early ``break`` drained on the next iteration by the
DataLoader's own reset). Since a key names its epoch and indices, what a batch holds does not depend on
the number of workers, or on which worker loaded it; a resume is the same few integers as ever.

>>> import torch
>>> from cleanfit.data.sources import as_source
>>> class Squares(torch.utils.data.Dataset):
...     def __len__(self): return 6
...     def __getitem__(self, i): return i * i
>>> workers = Workers(as_source(Squares()), 2, pin_memory=False)
>>> [b.tolist() for b in workers.run(iter([(0, [1, 2]), (0, [5]), (0, [0, 3])]))]
[[1, 4], [25], [0, 9]]
>>> workers.close()

A worker's error comes back as a :class:`cleanfit.DataError` naming the example and the worker's
traceback, never as a hang.
"""

from __future__ import annotations

import multiprocessing
import pickle
import traceback
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from cleanfit.errors import CleanfitError, DataError

__all__ = ["Workers"]


class _Plan:
    """The DataLoader's sampler: the keys of the batches to load, set by Batches before each iteration."""

    def __init__(self) -> None:
        self.keys: Iterator[Any] = iter(())

    def __iter__(self) -> Iterator[Any]:
        return self.keys  # the same iterator each time: the DataLoader may ask twice when it starts


class _Failure:
    """What a worker sends back instead of a batch when loading it raised (plain strings: always picklable)."""

    def __init__(self, key: Any, exc: BaseException, worker: int | None) -> None:
        self.epoch, self.indices = key[0], list(key[1])
        self.kind = type(exc).__name__
        self.message = str(exc)
        self.cleanfit = isinstance(exc, CleanfitError)
        self.example = getattr(exc, "cleanfit_example", None)
        frames = traceback.extract_tb(exc.__traceback__)
        self.frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-3:]]
        self.worker = worker

    def error(self) -> DataError:
        if self.cleanfit:
            return DataError(self.message)
        where = f"example {self.example}" if self.example is not None else f"the batch of examples {self.indices[:8]}"
        return DataError(
            f"loading {where} (epoch {self.epoch}) failed in worker {self.worker}: {self.kind}: {self.message} "
            f"[worker traceback, last frames: {' <- '.join(reversed(self.frames))}]; fix the Dataset's "
            "__getitem__ (or collate) for that example; Batches(..., workers=0) runs it in this process, "
            "where a debugger can stop in it."
        )


class _Fetch(Dataset):
    """Runs in a worker: one key ``(epoch, indices)`` -> one collated batch (or a :class:`_Failure`)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: Any) -> Any:
        try:
            return self.source.fetch(*key)
        except Exception as exc:  # sent back and raised in the main process, with the example's index
            info = torch.utils.data.get_worker_info()
            return _Failure(key, exc, None if info is None else info.id)


def _as_is(batch: Any) -> Any:
    return batch


class Workers:
    """``n`` persistent DataLoader workers that load a source's batches by key, in order."""

    def __init__(self, source: Any, n: int, *, pin_memory: bool) -> None:
        _check_picklable(source.dataset, source.collate)
        self.plan = _Plan()
        self.loader = DataLoader(
            _Fetch(source), batch_size=None, sampler=self.plan, num_workers=n, collate_fn=_as_is,
            pin_memory=pin_memory, persistent_workers=True,
            generator=torch.Generator(),  # the DataLoader's own base seed: never drawn from the global RNG
        )

    def run(self, keys: Iterator[Any]) -> Iterator[Any]:
        """The batches of ``keys``, in order; a worker's error raises :class:`DataError`."""
        self.plan.keys = keys
        iterator = iter(self.loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except RuntimeError as exc:
                if "DataLoader worker" not in str(exc):
                    raise
                self.close()  # a worker died (killed, out of memory): start fresh workers next time
                raise DataError(f"a Batches worker process died: {exc}; run with workers=0 to see the error "
                                "in this process, or lower workers= if the machine ran out of memory.") from exc
            if type(batch) is _Failure:
                raise batch.error()
            yield batch

    def pids(self) -> list[int]:
        """The worker processes' ids (empty before the first iteration or after :meth:`close`)."""
        iterator = self.loader._iterator
        return [w.pid for w in getattr(iterator, "_workers", [])]

    def close(self) -> None:
        """Stop the worker processes now (they also stop when the Batches is garbage collected)."""
        iterator, self.loader._iterator = self.loader._iterator, None
        if iterator is not None:
            iterator._shutdown_workers()


def _check_picklable(dataset: Any, collate: Any) -> None:
    """With the spawn/forkserver start methods each worker receives a pickled copy of the Dataset."""
    if multiprocessing.get_start_method(allow_none=True) in (None, "fork"):
        return  # forked workers inherit the Dataset: nothing is pickled
    for what, value in (("Dataset", dataset), ("collate", collate)):
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise DataError(
                f"Batches(workers=...) sends the {what} {type(value).__name__} to worker processes "
                f"({multiprocessing.get_start_method()} start method), but it cannot be pickled: "
                f"{type(exc).__name__}: {exc}. Define it at module level (not a lambda or a local class), open "
                "files and connections lazily in __getitem__ instead of holding them, or pass workers=0."
            ) from exc
