"""Seeding and RNG state: one call makes a program's random numbers repeatable.

>>> import random, numpy as np, torch
>>> _ = seed_everything(7)
>>> a = (random.random(), np.random.rand(), torch.rand(1).item())
>>> _ = seed_everything(7)
>>> a == (random.random(), np.random.rand(), torch.rand(1).item())
True
"""

from __future__ import annotations

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
