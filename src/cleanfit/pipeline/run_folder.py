"""A run folder's own files: ``run.json`` (the run's identity and status), the lock of the process training
there, and the checks made before anything is written into it.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> read_run_file(folder)  # no run.json yet (or an unreadable one): an empty record
{}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cleanfit._util.locks import Held, claim
from cleanfit.errors import ConfigError

RUN_FILE = "run.json"
LOCK_FILE = ".cleanfit.lock"  # held by the process training in the folder


def lock_run_folder(out: Path) -> int:
    """Make ``out`` this process's (an OS lock on ``out/.cleanfit.lock``, freed when the process ends).

    Another process training there is a :class:`~cleanfit.errors.ConfigError` naming the folder and
    that process's PID. Returns the lock's descriptor for :func:`cleanfit._util.locks.release`.
    """
    out.mkdir(parents=True, exist_ok=True)
    try:
        return claim(out / LOCK_FILE)
    except Held as held:
        raise ConfigError(
            f"--out {out}: another cleanfit process (PID {held.pid if held.pid is not None else 'unknown'}) is "
            "training in this folder; wait for it to end (or stop it), or pass --out NEW_DIR"
        ) from None


def check_checkpoint_dir(directory: Path) -> None:
    """A checkpoint folder that cannot be made is a config mistake, found before the run is recorded."""
    missing = directory
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    try:
        if missing.parent.exists() and not missing.parent.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        if not directory.exists():
            missing.mkdir()  # tried, then removed: nothing is left behind by a check
            missing.rmdir()
        elif not directory.is_dir():
            raise NotADirectoryError(20, "Not a directory")
    except OSError as exc:
        raise ConfigError(
            f"checkpoint.dir = {str(directory)!r}: cannot create it ({exc.strerror}); set checkpoint.dir "
            "(or --out) to a folder you can write"
        ) from None


def read_run_file(out: Path) -> dict[str, Any]:
    """``out/run.json`` as a dict; ``{}`` when it is missing, unreadable or not a JSON object."""
    try:
        record = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
