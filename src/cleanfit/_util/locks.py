"""OS file locks (``fcntl.flock``): the kernel releases them when the holder exits, even on SIGKILL.

Two uses, one rule each:

- :func:`locked` waits for a lock, for a short critical section that several processes may enter at
  once (e.g. the first open of a new MLflow SQLite store, which runs its schema migrations)::

      with locked(Path("mlflow.db.lock")):
          client = MlflowClient("sqlite:///mlflow.db")

- :func:`claim` takes a lock without waiting, for something one process owns for as long as it runs
  (e.g. a run folder); a second process gets :class:`Held`, naming the PID written in the lock file::

      >>> import tempfile
      >>> lock = Path(tempfile.mkdtemp()) / ".lock"
      >>> fd = claim(lock)
      >>> int(lock.read_text()) == os.getpid()
      True
      >>> release(fd)

A lock file is never deleted (deleting it while another process waits on it would let two in).
Where ``fcntl`` does not exist (Windows) the locks are no-ops.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class Held(Exception):
    """The lock is held by another process; ``pid`` is the one its file names (None if unreadable)."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(f"{path} is locked by process {pid}")
        self.path, self.pid = path, pid


@contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block, waiting for it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def claim(path: str | Path) -> int:
    """Lock ``path`` for this process without waiting, write our PID into it, return the descriptor.

    Raises :class:`Held` when another process holds it. Keep the descriptor open for as long as the
    lock should last; :func:`release` (or the process's exit) ends it.
    """
    path = Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Held(path, _pid_in(path)) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release(fd: int) -> None:
    """End a lock taken with :func:`claim`."""
    os.close(fd)


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
