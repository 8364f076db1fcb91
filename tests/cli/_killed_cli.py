"""The real ``cleanfit`` command, killed for real (SIGKILL) at a chosen point: for test_cli_train.py.

    python tests/cli/_killed_cli.py N train CONFIG.toml [cleanfit options ...]

Runs ``cleanfit.cli.main.main`` with the remaining arguments, in this process, and SIGKILLs itself
right after the N-th checkpoint file (``*.ckpt``) has been renamed into place: a crash that leaves a
finished checkpoint behind and the run unfinished. The kill point is a count, not a time, so the
test needs no polling or sleeps. The kill switch lives here, in the test's script, never in
cleanfit: it wraps ``os.replace``, the last step of every atomic file write.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any


def kill_after_checkpoints(n: int) -> None:
    """SIGKILL this process right after its ``n``-th ``os.replace`` onto a ``*.ckpt`` path."""
    real_replace, written = os.replace, [0]

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        real_replace(src, dst, **kwargs)
        if Path(os.fsdecode(dst)).suffix == ".ckpt":
            written[0] += 1
            if written[0] == n:
                sys.stdout.flush()
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace


def main(argv: list[str]) -> None:
    kill_after_checkpoints(int(argv[0]))
    from cleanfit.cli.main import main as cleanfit

    cleanfit(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
