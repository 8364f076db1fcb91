"""What the tests that start real torch.distributed processes share (``tests/conftest.py`` puts this folder on
``sys.path``, so ``from _dist import process_env, free_port`` works from every test folder).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import cleanfit as cf

SRC = Path(cf.__file__).resolve().parents[1]
_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")


def process_env(**extra: str) -> dict[str, str]:
    """This process's environment without a launcher's rank variables (a test under torchrun must not leak
    them into its children), one thread per process, cleanfit's source first on the path, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCHER_VARIABLES}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(SRC), **extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
