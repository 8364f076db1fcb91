"""Writing files: atomically (a reader sees the old file or the whole new one), and probing a path first.

:func:`write_atomic` writes to a temporary file in the target's folder with a per-process name
(``.NAME.PID.tmp``), flushes and fsyncs it, renames it over the target with :func:`os.replace`, and
fsyncs the folder. Checkpoints, ``best.json``, ``run.json``, metrics and reports all go through it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cleanfit.errors import ConfigError

TEMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """Where :func:`write_atomic` writes ``path`` first: ``.NAME.PID.tmp`` in the same folder."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_atomic(path: str | Path, data: bytes | str | Sequence[bytes | memoryview]) -> None:
    """Write ``data`` (text as UTF-8, bytes, or parts written in order) to ``path`` so that ``path``
    is either the old file or the complete new one."""
    path = Path(path)
    temp = temp_path(path)
    parts = [data.encode("utf-8")] if isinstance(data, str) else [data] if isinstance(data, bytes) else data
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


def write_json(path: str | Path, value: Any, *, default: Callable[[Any], Any] | None = str) -> None:
    """``value`` as indented JSON (NaN and infinities as JavaScript writes them), atomically."""
    write_atomic(path, json.dumps(value, indent=2, default=default) + "\n")


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
