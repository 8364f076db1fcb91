"""How close does a normal DDP run come to CLEANFIT_DIST_TIMEOUT (default 60 s)?

Runs two 2-rank gloo runs under torchrun with CLEANFIT_DIST_TIMEOUT set far below the default: the Trainer
run of tests/training/test_ddp.py (batch 5, a checkpoint every 2 steps, so rank 0 writes while rank 1 waits),
and ``cleanfit train`` on the bundled breast cancer table (3 epochs, MLflow in a SQLite store, the report and
the model written by rank 0). gloo fails
any collective that waits longer than the timeout, so a run that succeeds at T seconds had every wait
(checkpoint writes, evaluation, the end of fit) under T: the margin to the default is at least 60 / T.

    PYTHONPATH=src python benchmarks/bench_dist_timeout.py [trainer=0.25,0.5,1] [cli=2,5,10,20]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cleanfit.pipeline.demo import write_breast_cancer

WORKER = Path(__file__).resolve().parents[1] / "tests" / "training" / "_ddp_worker.py"
DEFAULT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(kind: str, timeout_s: float) -> tuple[bool, float]:
    """One 2-rank run (``"trainer"`` or ``"cli"``) with CLEANFIT_DIST_TIMEOUT = timeout_s: (succeeded, wall s)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update({"OMP_NUM_THREADS": "1", "CLEANFIT_DIST_TIMEOUT": str(timeout_s)})
    with tempfile.TemporaryDirectory() as out:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                  str(_free_port())]
        if kind == "trainer":
            command = [*launch, str(WORKER), out, "--batch", "5", "--checkpoint-every", "2"]
        else:
            write_breast_cancer(Path(out) / "cancer.csv")
            (Path(out) / "c.toml").write_text(
                '[data]\npath = "cancer.csv"\ntarget = "diagnosis"\n[train]\nepochs = 3\n'
                f'[tracking]\nuri = "sqlite:///{out}/mlflow.db"\n')
            command = [*launch, "-m", "cleanfit", "train", str(Path(out) / "c.toml"), "--out", str(Path(out) / "run")]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=out)
        return done.returncode == 0, time.perf_counter() - started


def main(argv: list[str]) -> None:
    plan = {"trainer": [0.25, 0.5, 1.0], "cli": [2.0, 5.0, 10.0, 20.0]}
    for arg in argv:
        kind, _, values = arg.partition("=")
        plan[kind] = [float(v) for v in values.split(",") if v]
    print(f"{'run':>8}  {'CLEANFIT_DIST_TIMEOUT':>22}  {'result':>7}  {'wall s':>7}  margin to the default {DEFAULT_S:g} s")
    for kind, timeouts in plan.items():
        for timeout_s in timeouts:
            ok, wall = run(kind, timeout_s)
            margin = f"every wait < {timeout_s:g} s: >= {DEFAULT_S / timeout_s:.0f}x" if ok else "-"
            print(f"{kind:>8}  {timeout_s:>22g}  {'ok' if ok else 'failed':>7}  {wall:>7.1f}  {margin}")


if __name__ == "__main__":
    main(sys.argv[1:])
