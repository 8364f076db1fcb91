"""The real ``cleanfit`` command, sent a real signal by itself at a chosen point: for the kill and signal tests.

    python tests/cli/_signal_cli.py SIGNAL N train CONFIG.toml [cleanfit options ...]

Runs ``cleanfit.cli.main.main`` with the remaining arguments, in this process, and right after the N-th
checkpoint file (``*.ckpt``) is renamed into place sends SIGNAL (``SIGKILL``, ``SIGTERM``, ``SIGSTOP``,
...) to itself. ``SIGKILL`` there is a crash that leaves a finished checkpoint behind and the run
unfinished; with ``SIGSTOP`` it stays stopped, holding what it holds, until the test sends ``SIGCONT``.
The point is a count, not a time, so the tests need no polling or sleeps. The switch lives here, in the
tests' script, never in cleanfit: it wraps ``os.replace``, the last step of every atomic file write.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any


def signal_after_checkpoints(signum: int, n: int) -> None:
    """Send ``signum`` to this process right after its ``n``-th ``os.replace`` onto a ``*.ckpt`` path."""
    real_replace, written = os.replace, [0]

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        real_replace(src, dst, **kwargs)
        if Path(os.fsdecode(dst)).suffix == ".ckpt":
            written[0] += 1
            if written[0] == n:
                sys.stdout.flush()
                sys.stderr.flush()
                os.kill(os.getpid(), signum)

    os.replace = replace


def main(argv: list[str]) -> None:
    signal_after_checkpoints(getattr(signal, argv[0]), int(argv[1]))
    from cleanfit.cli.main import main as cleanfit

    cleanfit(argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
