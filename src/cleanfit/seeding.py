"""Seeding and RNG state: one call makes a program's random numbers repeatable.

>>> import random, numpy as np, torch
>>> _ = seed_everything(7)
>>> a = (random.random(), np.random.rand(), torch.rand(1).item())
>>> _ = seed_everything(7)
>>> a == (random.random(), np.random.rand(), torch.rand(1).item())
True
"""

from __future__ import annotations

import _random
import os
import random
from typing import Any

import numpy as np
import torch

from cleanfit._util.args import check_seed
from cleanfit.errors import DataError

_CUBLAS_WORKSPACE = ":4096:8"


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device).

    With ``deterministic=True`` also turn on ``torch.use_deterministic_algorithms(True)``, cuDNN
    determinism (and no cuDNN benchmarking) and the cuBLAS workspace setting that deterministic
    CUDA matrix products need. Returns the seed.
    """
    seed = check_seed(seed, "seed_everything")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return seed


def rng_state() -> dict[str, Any]:
    """Capture every RNG ``seed_everything`` seeds, as a dict that ``torch.load(weights_only=True)`` can read.

    >>> s = rng_state(); x = torch.rand(3); set_rng_state(s); bool((torch.rand(3) == x).all())
    True
    """
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"], dtype=np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states captured by :func:`rng_state`; a bad state changes nothing and raises DataError."""
    before = rng_state()
    try:
        _set_cpu_states(state)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        _set_cpu_states(before)  # all or nothing: never leave the RNGs half restored
        raise DataError(f"not an RNG state from cleanfit.rng_state(): missing or bad field {exc}") from exc
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        count = min(len(cuda), torch.cuda.device_count())
        for index in range(count):
            torch.cuda.set_rng_state(cuda[index], index)


def _set_cpu_states(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {
                "key": np.asarray(np_state["key"], dtype=np.int64).astype(np.uint32),
                "pos": int(np_state["pos"]),
            },
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        }
    )
    torch.set_rng_state(state["torch"])


# -- per-example randomness ---------------------------------------------------------------------
# While a Dataset's __getitem__(i) runs under Batches, the global RNGs are seeded from (seed, epoch, i)
# and this holds that key, so example_rng() can build a Generator from it. None outside loading.
_example_key: int | None = None
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1
_python_rng = random._inst  # type: ignore[attr-defined]  # the instance behind random.random() & co.
_seed_python = _random.Random.seed
_seed_numpy = np.random.seed  # bound to NumPy's global RandomState, like random.seed
_seed_torch = torch.default_generator.manual_seed
_C1, _C2, _C3 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def example_seed(seed: int, epoch: int, index: int) -> int:
    """The 64-bit seed of example ``index`` in ``epoch`` of a run seeded with ``seed`` (splitmix64 mixing).

    >>> example_seed(0, 0, 1) == example_seed(0, 0, 1) != example_seed(0, 1, 1)
    True
    """
    z = (seed * _C1 + (epoch + 1) * _C2 + (index + 1) * _C3) & _MASK64
    z = ((z ^ (z >> 30)) * _C2) & _MASK64
    z = ((z ^ (z >> 27)) * _C3) & _MASK64
    return z ^ (z >> 31)


def example_seeds(seed: int, epoch: int, indices: Any) -> list[int]:
    """:func:`example_seed` of every index in ``indices`` (non-negative ints), in one NumPy pass: the same
    values, as Python ints, at ~0.1 µs an index instead of ~1 µs (uint64 arithmetic wraps mod 2**64).

    >>> example_seeds(3, 1, [0, 5]) == [example_seed(3, 1, 0), example_seed(3, 1, 5)]
    True
    """
    z = np.array(indices, dtype=np.uint64)
    z *= np.uint64(_C3)
    z += np.uint64((seed * _C1 + (epoch + 1) * _C2 + _C3) & _MASK64)  # (index + 1) * C3 = index * C3 + C3
    z ^= z >> np.uint64(30)
    z *= np.uint64(_C2)
    z ^= z >> np.uint64(27)
    z *= np.uint64(_C3)
    z ^= z >> np.uint64(31)
    return z.tolist()


def seed_example(key: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch's CPU generator from ``key``, cheaply (~8 µs, the
    three generators' own re-initialisations: ``torch.manual_seed`` would also walk every CUDA device, ~100x
    slower), and make ``key`` the one :func:`example_rng` uses."""
    global _example_key
    _seed_python(_python_rng, key)  # random.seed(key) without its type dispatch (~0.5 µs)
    _python_rng.gauss_next = None
    _seed_numpy(key & _MASK32)
    _seed_torch(key)
    _example_key = key


def end_example() -> None:
    """Loading is over: :func:`example_rng` raises again."""
    global _example_key
    _example_key = None


def example_rng() -> np.random.Generator:
    """A NumPy Generator seeded from ``(seed, epoch, index)`` of the example being loaded.

    Call it inside a Dataset's ``__getitem__`` (in a worker or in the main process) for augmentation that
    is the same for any number of workers, after any resume and under any world size:

    >>> import cleanfit as cf
    >>> class Noisy(torch.utils.data.Dataset):
    ...     def __len__(self): return 4
    ...     def __getitem__(self, i): return float(cf.example_rng().normal())
    >>> first = [b.tolist() for b in cf.Batches(Noisy(), 2, seed=3, workers=0)]
    >>> first == [b.tolist() for b in cf.Batches(Noisy(), 2, seed=3, workers=1)]
    True

    Outside loading it raises :class:`cleanfit.DataError`.
    """
    key = _example_key
    if key is None:
        raise DataError(
            "cf.example_rng() was called outside loading: it gives the random numbers of the example that "
            "cf.Batches is loading, so call it inside your Dataset's __getitem__ (or its transforms), and use "
            "np.random.default_rng(seed) elsewhere."
        )
    return np.random.Generator(np.random.PCG64(key))


class MainRngs:
    """Saves the main process's Python, NumPy and torch CPU RNG states on entry and restores them on exit,
    so loading a batch (which seeds them per example) never moves the streams of the training loop.

    ~50 µs a batch: NumPy's MT19937 state setter copies its 624 words one Python index at a time, ~40x
    faster from a list than from an array, so the saved key is kept as a list.

    >>> _ = np.random.normal(); before = np.random.get_state(legacy=False)
    >>> with MainRngs():
    ...     np.random.seed(1)
    >>> after = np.random.get_state(legacy=False)
    >>> bool((after["state"]["key"] == before["state"]["key"]).all()), after["gauss"] == before["gauss"]
    (True, True)
    """

    __slots__ = ("states",)

    def __enter__(self) -> MainRngs:
        np_state = np.random.get_state(legacy=False)
        inner = np_state["state"]
        if isinstance(inner, dict) and isinstance(inner.get("key"), np.ndarray):
            np_state["state"] = {**inner, "key": inner["key"].tolist()}
        self.states = (random.getstate(), np_state, torch.default_generator.get_state())
        return self

    def __exit__(self, *exc: Any) -> None:
        py, np_state, torch_state = self.states
        random.setstate(py)
        np.random.set_state(np_state)
        torch.default_generator.set_state(torch_state)
        end_example()
