"""A child process for test_checkpoints.py: real kills and real write failures during a save.

    python tests/training/_checkpoint_child.py kill-fsync DIR N      SIGKILL itself at the N-th os.fsync of a save
    python tests/training/_checkpoint_child.py fsize-limit DIR BYTES save once, cap the file size, save a larger state

Every mode first saves ``step 1`` (a small state) so there is a previous checkpoint to protect, then
does the risky second save of ``step 2`` and prints one JSON line with what happened.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys

import torch

from cleanfit.errors import CheckpointError
from cleanfit.training.checkpoints import CheckpointManager


def small_state() -> dict:
    return {"w": torch.arange(8, dtype=torch.float32), "step": 1}


def large_state() -> dict:
    return {"w": torch.ones(256 * 1024, dtype=torch.float32), "step": 2}  # 1 MiB of payload


def _kill_at_fsync(n: int) -> None:
    real_fsync = os.fsync
    calls = 0

    def fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == n:
            os.kill(os.getpid(), signal.SIGKILL)
        real_fsync(fd)

    os.fsync = fsync


def main(argv: list[str]) -> int:
    mode, directory, arg = argv[1], argv[2], int(argv[3])
    manager = CheckpointManager(directory, keep_last=3)
    manager.check_writable()
    manager.save(small_state(), step=1, epoch=0, metric=1.0)
    if mode == "kill-fsync":
        _kill_at_fsync(arg)  # the 1st fsync is the temp file's, the 2nd the directory's after the rename
        manager.save(large_state(), step=2, epoch=0, metric=0.5)
        print(json.dumps({"outcome": "not killed"}))
        return 0
    if mode == "fsize-limit":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so an oversized write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (arg, arg))
        try:
            manager.save(large_state(), step=2, epoch=0, metric=0.5)
        except CheckpointError as exc:
            print(json.dumps({"outcome": "CheckpointError", "message": str(exc)}))
            return 0
        print(json.dumps({"outcome": "saved"}))
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
