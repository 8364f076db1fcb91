"""The checkpoint file format: one verified container around a ``torch.save`` payload.

Layout (all integers big-endian)::

    MAGIC                 17 bytes   b"CLEANFIT CKPT v1\\n"
    meta_len, payload_len 2 x uint64
    sha256                32 bytes   over (meta_len, payload_len, meta, payload)
    meta                  meta_len bytes of UTF-8 JSON (step, epoch, metric, monitor, ...)
    payload               payload_len bytes written by torch.save

A file is valid only when its size is exactly the sum of those parts and the digest matches, so a
file cut at any byte offset, or with any byte changed, is rejected before a single byte of the
payload reaches the unpickler. The payload is then read with ``torch.load(weights_only=True)``.

Writes are atomic (:func:`cleanfit._util.files.write_atomic`): the bytes go to a temporary file in the
target's directory, which is flushed and fsynced, renamed over the target with :func:`os.replace`, and
the directory is fsynced.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import os
import pickle
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cleanfit._util.files import TEMP_SUFFIX, is_disk_full, write_atomic  # noqa: F401 - the checkpoints use them as _file.*
from cleanfit.errors import CheckpointError

MAGIC = b"CLEANFIT CKPT v1\n"
_LENGTHS = struct.Struct(">QQ")
_DIGEST_SIZE = 32
HEADER_SIZE = len(MAGIC) + _LENGTHS.size + _DIGEST_SIZE

_PLAIN_TYPES = (int, float, complex, str, bytes, bool, type(None), torch.dtype, torch.device, torch.Size)
_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set)


class InvalidCheckpoint(CheckpointError):
    """A checkpoint file that is truncated, corrupted or not a cleanfit checkpoint at all."""


class UnsafeCheckpoint(CheckpointError):
    """A checkpoint whose payload holds objects other than tensors and plain values."""


def check_state(state: Any, where: str = "state") -> None:
    """Raise CheckpointError naming the first value ``torch.load(weights_only=True)`` would refuse.

    >>> check_state({"model": {"w": torch.zeros(2)}, "step": 3, "rng": [1, 2.0, None]})
    >>> import numpy as np
    >>> check_state({"rng": {"numpy": (1, np.zeros(2))}})
    Traceback (most recent call last):
    ...
    cleanfit.errors.CheckpointError: cannot checkpoint state['rng']['numpy'][1]: a numpy.ndarray ...
    """
    stack: list[tuple[Any, str]] = [(state, where)]
    while stack:
        value, path = stack.pop()
        kind = type(value)
        if isinstance(value, torch.Tensor) or kind in _PLAIN_TYPES:
            continue
        if kind in (dict, collections.OrderedDict):
            for key, item in value.items():
                if type(key) not in _PLAIN_TYPES:
                    raise _unsupported(key, f"{path} key {key!r}")
                stack.append((item, f"{path}[{key!r}]"))
        elif kind in (list, tuple, set):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
        else:
            raise _unsupported(value, path)


def _unsupported(value: Any, path: str) -> CheckpointError:
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    return CheckpointError(
        f"cannot checkpoint {path}: a {name} is not a tensor or plain value, so "
        "torch.load(weights_only=True) would refuse to read it back; convert it in the state "
        "(e.g. torch.from_numpy(array) or array.tolist(), int(x) for NumPy scalars)"
    )


def encode(state: Mapping[str, Any], meta: Mapping[str, Any]) -> list[bytes | memoryview]:
    """Serialise ``state`` with torch.save and wrap it with ``meta``: the file's parts, in order.

    The payload is not copied (the parts are written one after the other), so a save holds one
    serialised copy of the state in memory, not two.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return _parts(buffer.getbuffer(), meta)


def wrap(payload: bytes, meta: Mapping[str, Any]) -> bytes:
    """The container bytes for an already serialised ``payload`` (tests build crafted files with it)."""
    return b"".join(_parts(memoryview(payload), meta))


def _parts(payload: memoryview, meta: Mapping[str, Any]) -> list[bytes | memoryview]:
    meta_bytes = json.dumps(dict(meta), sort_keys=True).encode()
    lengths = _LENGTHS.pack(len(meta_bytes), payload.nbytes)
    digest = hashlib.sha256(lengths)
    digest.update(meta_bytes)
    digest.update(payload)
    return [MAGIC, lengths, digest.digest(), meta_bytes, payload]


def read_meta(path: Path) -> dict[str, Any] | None:
    """The JSON meta record of ``path`` without verifying the payload; None if unreadable."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_SIZE)
            if len(head) < HEADER_SIZE or not head.startswith(MAGIC):
                return None
            meta_len, _ = _LENGTHS.unpack_from(head, len(MAGIC))
            if meta_len > 1 << 20:
                return None
            meta = json.loads(f.read(meta_len))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def verify(data: bytes, path: Path) -> tuple[dict[str, Any], memoryview]:
    """Check the container; return (meta, payload) or raise InvalidCheckpoint saying what is wrong."""
    if len(data) < HEADER_SIZE:
        if not MAGIC.startswith(data[: len(MAGIC)]):
            raise InvalidCheckpoint(f"{path} is not a cleanfit checkpoint (unknown header)")
        raise InvalidCheckpoint(
            f"{path} is truncated: {len(data)} bytes, shorter than the {HEADER_SIZE}-byte header"
        )
    if not data.startswith(MAGIC):
        raise InvalidCheckpoint(
            f"{path} is not a cleanfit checkpoint (unknown header); cleanfit reads only files "
            "written by CheckpointManager.save"
        )
    meta_len, payload_len = _LENGTHS.unpack_from(data, len(MAGIC))
    expected = HEADER_SIZE + meta_len + payload_len
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "corrupt"
        raise InvalidCheckpoint(f"{path} is {state}: {len(data)} bytes where its header says {expected}")
    view = memoryview(data)
    lengths = view[len(MAGIC) : len(MAGIC) + _LENGTHS.size]
    stored = bytes(view[len(MAGIC) + _LENGTHS.size : HEADER_SIZE])
    body = view[HEADER_SIZE:]
    digest = hashlib.sha256(lengths)
    digest.update(body)
    if digest.digest() != stored:
        raise InvalidCheckpoint(f"{path} is corrupt: its sha256 checksum does not match its contents")
    try:
        meta = json.loads(bytes(body[:meta_len]))
    except ValueError as exc:  # pragma: no cover - the checksum matched, so the writer wrote this
        raise InvalidCheckpoint(f"{path} has an unreadable meta record: {exc}") from None
    return meta, body[meta_len:]


def decode(data: bytes, path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Verify ``data`` and load its payload with ``torch.load(weights_only=True)``."""
    _, payload = verify(data, path)
    try:
        state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise UnsafeCheckpoint(
            f"refused to load {path}: it holds objects other than tensors and plain values, which "
            f"could run code when unpickled ({first_line.strip()}); cleanfit loads checkpoints with "
            "torch.load(weights_only=True) only. Delete the file if you did not write it"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure of the payload is a bad checkpoint
        raise InvalidCheckpoint(f"{path} could not be deserialised: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise InvalidCheckpoint(f"{path} does not hold a training state dict (found {type(state).__name__})")
    return state


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (used to keep a concurrent writer's temp file)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover
        return False
    return True
