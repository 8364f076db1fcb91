"""What a run records about where it ran and on which data: versions, git commit, data fingerprint."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from cleanfit import __version__

__all__ = ["environment_params", "data_fingerprint"]

SAMPLE_BYTES = 64 * 2**20  # arrays larger than this are fingerprinted on a strided sample of rows


def environment_params(cwd: str | Path | None = None) -> dict[str, str]:
    """Versions, the git commit of ``cwd`` (the working directory by default) and the device.

    Keys: ``cleanfit_version``, ``torch_version``, ``numpy_version``, ``python_version``,
    ``device_name`` (the first CUDA device's name, ``mps`` or ``cpu``) and, inside a git working
    tree, ``git_commit`` and ``git_dirty`` (``"true"`` when tracked files have uncommitted changes).

    >>> sorted(environment_params("/"))[:3]
    ['cleanfit_version', 'device_name', 'numpy_version']
    """
    import torch  # heavy: only when the parameters are asked for (the sender process never is)

    params = {
        "cleanfit_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "device_name": _device_name(torch),
    }
    commit = _git(cwd, "rev-parse", "HEAD")
    if commit:
        params["git_commit"] = commit
        dirty = _git(cwd, "status", "--porcelain", "--untracked-files=no")
        params["git_dirty"] = "true" if dirty else "false"
    return params


def _device_name(torch: Any) -> str:
    if torch.cuda.is_available():
        return str(torch.cuda.get_device_name(0))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _git(cwd: str | Path | None, *args: str) -> str | None:
    """Output of a git command, or None outside a repository / without git (never raises)."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def data_fingerprint(*arrays: Any) -> str:
    """Shape, dtype and a content hash of the arrays: the same data gives the same string.

    Accepts NumPy arrays (also ``np.memmap``), torch tensors, pandas DataFrames/Series and anything
    ``np.asarray`` takes. The hash is BLAKE2b over the raw bytes. An array over 64 MiB is hashed on a
    strided sample of its rows (about 64 MiB: every k-th row plus the last one) together with its
    shape, so it stays fast on big data and still catches a different size, order or most edits; a
    change confined to unsampled rows goes unnoticed.

    >>> import numpy as np
    >>> data_fingerprint(np.arange(6.0).reshape(3, 2), np.array([0, 1, 0]))
    '(3, 2) float64; (3,) int64; blake2b 7cfb73a5318bd350'
    """
    digest = hashlib.blake2b(digest_size=8)
    described = []
    for array in arrays:
        shape, dtype = _hash_into(digest, array)
        described.append(f"{shape} {dtype}")
    return "; ".join(described + [f"blake2b {digest.hexdigest()}"])


def _hash_into(digest: Any, data: Any) -> tuple[tuple[int, ...], str]:
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # a torch tensor
        data = data.detach().cpu()
        data = data.float().numpy() if str(data.dtype) == "torch.bfloat16" else data.numpy()
    if hasattr(data, "dtypes") and hasattr(data, "columns"):  # a pandas DataFrame
        import pandas as pd

        shape = tuple(data.shape)
        digest.update(repr((list(map(str, data.columns)), [str(t) for t in data.dtypes])).encode())
        digest.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
        return shape, "dataframe"
    if hasattr(data, "dtype") and hasattr(data, "to_numpy") and not isinstance(data, np.ndarray):
        data = data.to_numpy()  # a pandas Series
    array = np.asarray(data)
    shape = tuple(array.shape)
    digest.update(repr((shape, str(array.dtype))).encode())
    if array.dtype == object:
        digest.update("\x1f".join(map(repr, array.ravel().tolist())).encode())
        return shape, "object"
    if array.ndim > 0 and array.nbytes > SAMPLE_BYTES:
        stride = -(-array.nbytes // SAMPLE_BYTES)
        rows = np.r_[np.arange(0, len(array), stride), len(array) - 1]
        array = array[rows]
    digest.update(np.ascontiguousarray(array).tobytes())
    return shape, str(array.dtype)
