"""Writing files: atomically (a reader sees the old file or the whole new one), and probing a path first.

:func:`write_atomic` writes to a temporary file in the target's folder with a per-process name
(``.NAME.PID.tmp``), flushes and fsyncs it, renames it over the target with :func:`os.replace`, and
fsyncs the folder. Checkpoints, ``best.json``, ``run.json``, metrics, reports, plots and ``model.pt``
all go through it. When the disk is full (or a size limit is hit) it leaves no partial file and raises
:class:`DiskFull`, an ``OSError`` that names the file and the bytes it needed. A small status file
(``run.json``) can still be rewritten on a full disk with ``in_place_if_full=True``: its old blocks
are reused, so a run never stays "running" for want of a few bytes.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cleanfit.errors import ConfigError

TEMP_SUFFIX = ".tmp"
_DISK_FULL = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DiskFull(OSError):
    """No room to write ``filename``: ``needed`` is the size in bytes of what could not be written."""

    needed: int = 0


def is_disk_full(exc: OSError) -> bool:
    """Whether ``exc`` means there was no room left (full disk, quota, file size limit)."""
    return exc.errno in _DISK_FULL


def disk_full_message(exc: DiskFull, option: str = "--out") -> str:
    """One line for a user: the file, the folder, the bytes needed and the fix."""
    path = Path(exc.filename)
    return (f"no space left writing {path.name} ({exc.needed} bytes) in {path.parent}: {exc.strerror}; "
            f"free space there, or pass {option} on a larger disk")


def temp_path(path: Path) -> Path:
    """Where :func:`write_atomic` writes ``path`` first: ``.NAME.PID.tmp`` in the same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_atomic(path: str | Path, data: bytes | str | Sequence[bytes | memoryview], *,
                 in_place_if_full: bool = False) -> None:
    """Write ``data`` (text as UTF-8, bytes, or parts written in order) to ``path`` so that ``path``
    is either the old file or the complete new one (:class:`DiskFull` when there is no room).

    ``in_place_if_full``: on a full disk, overwrite an existing ``path`` in place instead (only for a
    small file whose new content fits in the blocks it already has; not atomic against a crash).
    """
    path = Path(path)
    parts = [data.encode("utf-8")] if isinstance(data, str) else [data] if isinstance(data, bytes) else data
    try:
        _write_then_rename(path, parts)
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        if in_place_if_full and path.is_file() and _overwrite(path, parts):
            return
        full = DiskFull(exc.errno, exc.strerror, str(path))
        full.needed = sum(memoryview(p).nbytes for p in parts)
        raise full from None


def _overwrite(path: Path, parts: Sequence[bytes | memoryview]) -> bool:
    try:
        with open(path, "r+b") as f:
            for part in parts:
                f.write(part)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        return False
    return True


def _write_then_rename(path: Path, parts: Sequence[bytes | memoryview]) -> None:
    temp = temp_path(path)
    try:
        with open(temp, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            temp.unlink()
        except OSError:
            pass
        raise
    fsync_directory(path.parent)


def write_json(path: str | Path, value: Any, *, default: Callable[[Any], Any] | None = str,
               in_place_if_full: bool = False) -> None:
    """``value`` as indented JSON (NaN and infinities as JavaScript writes them), atomically."""
    write_atomic(path, json.dumps(value, indent=2, default=default) + "\n", in_place_if_full=in_place_if_full)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def check_writable(path: Path | None, option: str, *, make_folder: bool = False) -> None:
    """Fail before any work when ``path`` cannot be written (it is tried: created, then removed again).

    ``make_folder`` creates a missing parent folder; otherwise it must exist. Raises
    :class:`~cleanfit.errors.ConfigError` naming ``option`` (e.g. ``"--json"``) and the fix.
    """
    if path is None:
        return
    try:
        if path.is_dir():
            raise ConfigError(f"{option} {path}: is a directory; name a file such as {path / 'result.json'}")
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        if not path.parent.resolve().is_dir():
            raise ConfigError(f"{option} {path}: the folder {path.parent} does not exist; create it first")
        existed = path.exists()
        with open(path, "a"):  # appends nothing: an existing file is left as it is
            pass
        if not existed:
            path.unlink()
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write it ({exc.strerror}); choose another path") from None


def write_json_output(path: Path, value: Any, option: str = "--json") -> None:
    """:func:`write_json` for a file the user named with ``option``; failing is a ConfigError naming it."""
    try:
        write_json(path, value)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write it ({exc.strerror})") from None
