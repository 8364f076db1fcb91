"""The real ``cleanfit`` command whose rank 0 is slow setting up the run (tests/pipeline/test_ddp_setup.py).

    torchrun --nproc_per_node 2 tests/pipeline/_setup_cli.py SECONDS train CONFIG.toml ...

Rank 0 spends SECONDS more where it opens the tracking run and records the run in ``run.json``
(``pipeline/fit._open_run``): what a cold MLflow store on a slow shared disk costs. The other ranks do
nothing different.
"""

from __future__ import annotations

import os
import sys
import time

from cleanfit.cli.main import main
from cleanfit.pipeline import fit

_open_run = fit._open_run


def _slow_open_run(*args, **kwargs):
    if os.environ.get("RANK") == "0":
        time.sleep(float(sys.argv[1]))  # the slow setup itself: rank 0 busy, its heartbeat still running
    return _open_run(*args, **kwargs)


if __name__ == "__main__":
    fit._open_run = _slow_open_run
    main(sys.argv[2:])
