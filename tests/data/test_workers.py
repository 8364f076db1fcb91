"""Batches(workers=N), collate= and per-example randomness, with real worker processes.

What an example looks like is a pure function of (seed, epoch, index): the same batches for any number
of workers, after a resume at any batch (with another number of workers), and under any world size at the
same global batch; loading never moves the main process's RNG streams.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset

import cleanfit as cf
from cleanfit.data.batches import Batches
from cleanfit.errors import DataError

FEW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Augmented(Dataset):
    """Each item draws from every RNG a user's augmentation might use."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([i, random.random(), np.random.rand(), torch.rand(()).item(), cf.example_rng().normal()],
                            dtype=torch.float64)


def _epochs(b: Batches, epochs: int = 2) -> list[list[list[float]]]:
    return [[batch.tolist() for batch in b] for _ in range(epochs)]


def _flat(epochs: list[list[list[float]]]) -> list[list[float]]:
    return [row for epoch in epochs for batch in epoch for row in batch]


def test_every_rng_is_seeded_per_example_and_each_example_differs():
    rows = _flat(_epochs(Batches(Augmented(12), 5, seed=3)))
    assert len({tuple(r[1:]) for r in rows}) == 24  # every example of both epochs draws its own numbers
    again = _flat(_epochs(Batches(Augmented(12), 5, seed=3)))
    assert rows == again


@FEW
@given(n=st.integers(1, 40), batch=st.integers(1, 9), workers=st.sampled_from([1, 2, 4]), seed=st.integers(0, 5))
def test_same_batches_for_any_number_of_workers(n, batch, workers, seed):
    expected = _epochs(Batches(Augmented(n), batch, seed=seed))
    b = Batches(Augmented(n), batch, seed=seed, workers=workers)
    try:
        assert _epochs(b) == expected
    finally:
        b.close()


@FEW
@given(n=st.integers(2, 40), batch=st.integers(1, 7), workers=st.sampled_from([0, 1, 3]), data=st.data())
def test_resume_at_any_batch_with_another_number_of_workers(n, batch, workers, data):
    full = Batches(Augmented(n), batch, seed=1)
    expected = [b.tolist() for b in full]
    cut = data.draw(st.integers(0, len(full) - 1))
    first = Batches(Augmented(n), batch, seed=1, workers=2)
    it = iter(first)
    head = [next(it).tolist() for _ in range(cut)]
    state = first.state_dict()
    first.close()
    resumed = Batches(Augmented(n), batch, seed=1, workers=workers)
    resumed.load_state_dict(state)
    try:
        assert head + [b.tolist() for b in resumed] == expected
    finally:
        resumed.close()


@FEW
@given(n=st.integers(1, 40), batch=st.integers(1, 6), world=st.sampled_from([2, 3]), seed=st.integers(0, 3))
def test_same_global_batches_under_any_world_size(n, batch, world, seed):
    one = [b.tolist() for b in Batches(Augmented(n), batch * world, seed=seed, world_size=1, rank=0)]
    ranks = [[b.tolist() for b in Batches(Augmented(n), batch, seed=seed, world_size=world, rank=r,
                                          workers=1 if r == 0 else 0)] for r in range(world)]
    for j, global_batch in enumerate(one):
        assert sorted(row for r in range(world) for row in ranks[r][j]) == sorted(global_batch)


@pytest.mark.parametrize("workers", [0, 2])
def test_loading_leaves_the_main_process_rng_streams_as_they_were(workers):
    cf.seed_everything(5)
    expected = (random.random(), np.random.rand(), torch.rand(()).item())
    cf.seed_everything(5)
    b = Batches(Augmented(10), 3, workers=workers)
    _epochs(b)
    b.close()
    assert (random.random(), np.random.rand(), torch.rand(()).item()) == expected


def test_example_rng_outside_loading_is_a_data_error():
    with pytest.raises(DataError, match="outside loading"):
        cf.example_rng()


class Failing(Augmented):
    def __getitem__(self, i: int) -> torch.Tensor:
        if i == 7:
            raise ValueError("corrupt file img_0007.jpg")
        return super().__getitem__(i)


def test_a_worker_error_names_the_example_and_the_workers_traceback():
    b = Batches(Failing(10), 4, shuffle=False, workers=2)
    with pytest.raises(DataError) as info:
        list(b)
    message = str(info.value)
    assert "example 7" in message and "ValueError: corrupt file img_0007.jpg" in message
    assert "test_workers.py" in message and "in __getitem__" in message and "workers=0" in message
    b.close()


def test_in_the_main_process_the_error_is_the_users_own_with_a_note():
    with pytest.raises(ValueError, match="corrupt") as info:
        list(Batches(Failing(10), 4, shuffle=False))
    assert "example 7" in " ".join(info.value.__notes__)


class Pids(Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> int:
        return os.getpid()


def test_workers_persist_across_epochs_and_an_early_break_and_close_stops_them():
    b = Batches(Pids(), 2, workers=2)
    first = {int(p) for batch in b for p in batch}
    for batch in b:
        break  # the prefetched rest is drained on the next iteration
    second = {int(p) for batch in b for p in batch}
    assert first == second == set(b._workers.pids()) and os.getpid() not in first
    processes = b._workers.loader._iterator._workers
    b.close()
    assert not any(p.is_alive() for p in processes)


def test_workers_on_in_memory_arrays_are_a_note_and_the_fast_path():
    with pytest.warns(UserWarning, match="ignored for in-memory"):
        b = Batches((np.arange(10), np.arange(10)), 4, workers=2)
    assert b.workers == 0 and [y.tolist() for _, y in b][0] == [4, 6, 2, 7]


class Ragged(Dataset):
    """Token sequences of different lengths."""

    def __len__(self) -> int:
        return 9

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.arange(1, i % 4 + 2)


def pad(items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    ids = torch.nn.utils.rnn.pad_sequence(items, batch_first=True)
    return {"input_ids": ids, "mask": ids != 0}


def test_a_padding_collate_in_workers_and_in_the_main_process():
    main = [{k: v.tolist() for k, v in b.items()} for b in Batches(Ragged(), 4, collate=pad)]
    b = Batches(Ragged(), 4, collate=pad, workers=2)
    assert [{k: v.tolist() for k, v in x.items()} for x in b] == main
    b.close()
    assert [len(x["input_ids"]) for x in main] == [4, 4, 1]


def mixed(items):
    return torch.stack([item[:1] for item in items]), torch.zeros(len(items) + 1)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_collate_returning_mixed_lengths_is_a_data_error(workers):
    b = Batches(Ragged(), 4, collate=mixed, workers=workers)
    with pytest.raises(DataError, match=r"mixed lengths for 4 items \(batch\[0\]: 4, batch\[1\]: 5\).*one row per"):
        list(b)
    b.close()


class GetItemsBatch(Ragged):
    def __getitems__(self, indices):
        return torch.stack([torch.tensor(i) for i in indices]), torch.zeros(len(indices))


def test_a_getitems_returning_a_batch_instead_of_items_is_a_data_error():
    with pytest.raises(DataError, match=r"__getitems__ returned a tuple for 4 indices.*one item per index"):
        list(Batches(GetItemsBatch(), 4))


def test_collate_on_arrays_and_bad_workers_are_refused():
    with pytest.raises(DataError, match="collate= is for map-style Datasets"):
        Batches(np.arange(4), 2, collate=pad)
    with pytest.raises(DataError, match="workers must be an integer >= 0"):
        Batches(Ragged(), 2, workers=-1)


def _script(body: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        """
        import os, signal, sys
        import torch
        import cleanfit as cf

        class Slow(torch.utils.data.Dataset):
            def __len__(self): return 64
            def __getitem__(self, i): return torch.tensor(i)
        """
    ) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("ending", ["raise RuntimeError('boom in the loop')", "os.kill(os.getpid(), signal.SIGINT)"])
def test_no_worker_outlives_an_exception_or_ctrl_c(ending):
    done = _script(f"""
        b = cf.Batches(Slow(), 4, workers=2)
        for i, batch in enumerate(b):
            if i == 2:
                print(" ".join(map(str, b._workers.pids())), flush=True)
                {ending}
        """)
    assert done.returncode != 0 and ("boom" in done.stderr or "KeyboardInterrupt" in done.stderr), done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2
    for pid in pids:  # the workers were children of the script, which has exited: none may be left
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_an_unpicklable_dataset_with_spawned_workers_is_a_data_error():
    done = _script("""
        import multiprocessing
        multiprocessing.set_start_method("spawn")
        class Local(Slow):
            pass
        Local.opener = lambda self: None
        ds = Local(); ds.handle = lambda: 0
        try:
            list(cf.Batches(ds, 4, workers=1))
        except cf.DataError as exc:
            print(exc)
        """)
    assert "cannot be pickled" in done.stdout and "module level" in done.stdout, done.stderr


def test_a_worker_that_dies_is_a_data_error_and_its_pool_is_closed():
    # In a child process: torch's DataLoader answers a dead worker's SIGCHLD by raising in whatever the main
    # thread runs at that moment, which inside pytest can be pytest's own machinery.
    done = _script("""
        class Dies(torch.utils.data.Dataset):
            def __len__(self): return 8
            def __getitem__(self, i):
                if i == 3 and torch.utils.data.get_worker_info() is not None:
                    os._exit(3)  # a worker killed outright (out of memory, a crash in a C library)
                return torch.tensor(i)
        b = cf.Batches(Dies(), 2, shuffle=False, workers=1)
        try:
            list(b)
        except cf.DataError as exc:
            print("DataError:", exc)
        print("pids:", b._workers is not None and b._workers.pids() == [])  # the dead pool was closed
        """)
    assert done.returncode == 0, done.stderr
    assert "DataError:" in done.stdout and "worker process died" in done.stdout and "workers=0" in done.stdout, done.stdout
    assert "pids: True" in done.stdout, done.stdout
