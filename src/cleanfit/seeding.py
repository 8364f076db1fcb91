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
import ctypes
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
_numpy_rng = np.random.mtrand._rand  # the RandomState behind np.random.rand() & co. (never replaced)
_seed_numpy_mt = _numpy_rng.seed  # = np.random.seed while its bit generator is an MT19937, one call less
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


def _numpy_seeder() -> Any:
    """What ``np.random.seed`` calls for NumPy's global RNG now (``set_bit_generator`` can swap its bit generator)."""
    return _seed_numpy_mt if type(_numpy_rng._bit_generator) is np.random.MT19937 else np.random.seed


def seed_example(key: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch's CPU generator from ``key``, cheaply (~7 µs, the
    three generators' own re-initialisations: ``torch.manual_seed`` would also walk every CUDA device, ~100x
    slower), and make ``key`` the one :func:`example_rng` uses."""
    global _example_key
    _seed_python(_python_rng, key)  # random.seed(key) without its type dispatch (~0.5 µs)
    _python_rng.gauss_next = None
    _numpy_seeder()(key & _MASK32)
    _seed_torch(key)
    _example_key = key


def load_examples(getitem: Any, indices: list[int], keys: list[int], epoch: int) -> list[Any]:
    """``getitem(i)`` for each index, each run with the generators seeded from its key as by :func:`seed_example`.

    The hot loop of loading: the seeding is written out here, not called (a call is ~0.2 µs, and each
    extra step between two items costs more there than it does alone: the item's decoding evicts it from
    the caches). An error gets a note that names the example, and ``cleanfit_example`` for a worker's report.

    >>> draw = lambda i: (i, random.random())
    >>> keys = example_seeds(0, 0, [3, 4])
    >>> load_examples(draw, [3, 4], keys, 0) == load_examples(draw, [3, 4], keys, 0)
    True
    """
    global _example_key
    seed_python, python_rng, seed_numpy, seed_torch = _seed_python, _python_rng, _numpy_seeder(), _seed_torch
    items: list[Any] = []
    append = items.append
    for i, key in zip(indices, keys):
        seed_python(python_rng, key)
        python_rng.gauss_next = None
        try:
            seed_numpy(key & _MASK32)
        except TypeError:  # an example swapped NumPy's bit generator (np.random.set_bit_generator)
            seed_numpy = np.random.seed
            seed_numpy(key & _MASK32)
        seed_torch(key)
        _example_key = key
        try:
            append(getitem(i))
        except Exception as exc:
            exc.cleanfit_example = i  # type: ignore[attr-defined]  # a worker's report names it
            exc.add_note(f"(cleanfit: while loading example {i} of epoch {epoch})")
            raise
    return items


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


# -- the main process's NumPy state, saved and restored in ~2 µs ------------------------------------
# NumPy's MT19937 state getter copies its 624 words one Python index at a time (~45 µs, two thirds of a
# batch's save/restore). Its C state, ``uint32 key[624]; int pos``, is reachable through the documented
# ``bit_generator.ctypes.state_address``, so the main process's state is saved as those 2,500 bytes and
# written back. The layout is checked once against the ``state`` property; where it does not match (another
# NumPy), or the global bit generator is not an MT19937, the ``get_state``/``set_state`` path is taken.
_MT_BYTES = 624 * 4 + 4


def _mt_view(bit_generator: Any) -> Any:
    return (ctypes.c_char * _MT_BYTES).from_address(bit_generator.ctypes.state_address)


def _mt_layout_is_known() -> bool:
    a, b = np.random.MT19937(1), np.random.MT19937(2)
    b.random_raw(700)  # past a twist: pos and key both differ from a's
    raw = bytes(_mt_view(b))
    key, pos = np.frombuffer(raw, np.uint32, 624), int(np.frombuffer(raw, np.intc, 1, 624 * 4)[0])
    ctypes.memmove(_mt_view(a), raw, _MT_BYTES)
    state_a, state_b = a.state["state"], b.state["state"]
    return bool((key == state_b["key"]).all() and (state_a["key"] == state_b["key"]).all()
                and pos == state_b["pos"] == state_a["pos"] and a.random_raw() == b.random_raw())


_MT_FAST = _mt_layout_is_known()
_mt_cache: list[Any] = [None, None]  # [the global RandomState's bit generator, a view of its C state]


def _save_numpy() -> tuple[Any, ...]:
    """The main process's NumPy global state: ``(bit generator, view, bytes, cached gaussian or None)``, or
    ``(bit generator, None, state, None)``."""
    bit_generator = _numpy_rng._bit_generator
    if not _MT_FAST or type(bit_generator) is not np.random.MT19937:
        state = np.random.get_state(legacy=False)
        inner = state["state"]
        if isinstance(inner, dict) and isinstance(inner.get("key"), np.ndarray):
            state["state"] = {**inner, "key": inner["key"].tolist()}  # ~40x faster to set from a list
        return (bit_generator, None, state, None)
    if _mt_cache[0] is not bit_generator:
        _mt_cache[:] = [bit_generator, _mt_view(bit_generator)]
    view = _mt_cache[1]
    before = bytes(view)
    # The legacy normal caches its pair's second value. Asking for one returns that cached value without
    # touching the MT state; with none cached it draws (the state changes) and restoring undoes the draw.
    gauss = _numpy_rng.standard_normal()
    return (bit_generator, view, before, gauss if bytes(view) == before else None)


def _restore_numpy(saved: tuple[Any, ...]) -> None:
    bit_generator, view, state, gauss = saved
    if _numpy_rng._bit_generator is not bit_generator:  # a Dataset called np.random.set_bit_generator
        np.random.set_bit_generator(bit_generator)
    if view is None:
        np.random.set_state(state)
    elif gauss is None:
        _seed_numpy_mt(0)  # only to clear any gaussian an example left cached: the state is written next
        ctypes.memmove(view, state, _MT_BYTES)
    else:
        key, pos = np.frombuffer(state, np.uint32, 624).tolist(), int(np.frombuffer(state, np.intc, 1, 624 * 4)[0])
        np.random.set_state({"bit_generator": "MT19937", "state": {"key": key, "pos": pos},
                             "has_gauss": 1, "gauss": gauss})


class MainRngs:
    """Saves the main process's Python, NumPy and torch CPU RNG states on entry and restores them on exit,
    so loading a batch (which seeds them per example) never moves the streams of the training loop.

    ~25 µs a batch, most of it Python's ``random.getstate`` (NumPy's part: :func:`_save_numpy`).

    >>> _ = np.random.normal(); before = np.random.get_state(legacy=False)
    >>> with MainRngs():
    ...     np.random.seed(1); _ = np.random.normal()
    >>> after = np.random.get_state(legacy=False)
    >>> bool((after["state"]["key"] == before["state"]["key"]).all()), after["gauss"] == before["gauss"]
    (True, True)
    """

    __slots__ = ("states",)

    def __enter__(self) -> MainRngs:
        self.states = (random.getstate(), _save_numpy(), torch.default_generator.get_state())
        return self

    def __exit__(self, *exc: Any) -> None:
        py, np_state, torch_state = self.states
        random.setstate(py)
        _restore_numpy(np_state)
        torch.default_generator.set_state(torch_state)
        end_example()
