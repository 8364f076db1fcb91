"""The DDP waits of a normal run, each against its own timeout, and what the heartbeat costs a step.

1. ``waits``: 2-rank gloo runs under torchrun. ``cleanfit train`` on the bundled breast cancer table (3 epochs,
   a new MLflow SQLite store, the report and the model written by rank 0) with each rank timing its two waits:
   the **join** of the process group (``CLEANFIT_DIST_TIMEOUT``) and the **setup wait** for rank 0's run folder
   and MLflow store (``CLEANFIT_SETUP_TIMEOUT``); then the same run, and the Trainer run of
   tests/training/test_ddp.py (checkpoints every 2 steps on rank 0), with ``CLEANFIT_DIST_TIMEOUT`` far below
   the 60 s default: gloo fails any collective that waits longer, so a run that succeeds at T s had every
   training wait under T.
2. ``heartbeat``: one process, a small MLP's optimizer steps with ``note_step`` on every step, without a
   heartbeat thread (the peer) and with one beating into a real TCPStore at the default interval (2 s) and
   at 0.01 s (200x as often); interleaved in rotating order, best of 9 runs of 1000 steps. Also the cost of one beat (a store ``set``).

    PYTHONPATH=src python benchmarks/bench_dist_timeout.py [waits] [heartbeat]
"""

from __future__ import annotations

import atexit
import datetime
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKER = Path(__file__).resolve().parents[1] / "tests" / "training" / "_ddp_worker.py"
DEFAULT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed_cli(argv: list[str]) -> None:
    """Under torchrun: the real CLI, with this rank's join and setup wait timed (printed at exit)."""
    from cleanfit.cli.main import main
    from cleanfit.training import distributed, setup_wait

    waits: dict[str, float] = {}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                waits[name] = waits.get(name, 0.0) + time.perf_counter() - started
        return wrapper

    distributed._join = timed("join", distributed._join)
    setup_wait.meet = timed("setup", setup_wait.meet)
    atexit.register(lambda: print(f"bench-waits rank={os.environ.get('RANK')} join={waits.get('join', -1):.3f} "
                                  f"setup={waits.get('setup', -1):.3f}", flush=True))
    main(argv)


def run(kind: str, timeout_s: float) -> tuple[bool, float, dict[int, tuple[float, float]]]:
    """One 2-rank run: (succeeded, wall s, {rank: (join s, setup wait s)} for the CLI)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update({"OMP_NUM_THREADS": "1", "CLEANFIT_DIST_TIMEOUT": str(timeout_s)})
    with tempfile.TemporaryDirectory() as out:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                  str(_free_port())]
        if kind == "trainer":
            command = [*launch, str(WORKER), out, "--batch", "5", "--checkpoint-every", "2"]
        else:
            from cleanfit.pipeline.demo import write_breast_cancer

            write_breast_cancer(Path(out) / "cancer.csv")
            (Path(out) / "c.toml").write_text(
                '[data]\npath = "cancer.csv"\ntarget = "diagnosis"\n[train]\nepochs = 3\n'
                f'[tracking]\nuri = "sqlite:///{out}/mlflow.db"\n')
            command = [*launch, str(Path(__file__).resolve()), "--timed-cli", "train", str(Path(out) / "c.toml"),
                       "--out", str(Path(out) / "run")]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=out)
        waits = {int(r): (float(j), float(s)) for r, j, s in
                 re.findall(r"bench-waits rank=(\d+) join=([-\d.]+) setup=([-\d.]+)", done.stdout)}
        if done.returncode != 0:  # why: the first error line of a rank
            said = [line for line in done.stderr.splitlines() if "TrainingError" in line or "cleanfit: error" in line]
            print(f"    ({kind}, {timeout_s:g} s) {said[0][:300] if said else done.stderr[-300:]}")
        return done.returncode == 0, time.perf_counter() - started, waits


def waits() -> None:
    ok, wall, per_rank = run("cli", DEFAULT_S)
    print(f"cleanfit train, default timeouts: {'ok' if ok else 'failed'} in {wall:.1f} s")
    for rank, (join, setup) in sorted(per_rank.items()):
        print(f"  rank {rank}: join {join:.2f} s (timeout {DEFAULT_S:g} s: {DEFAULT_S / max(join, 1e-3):.0f}x margin), "
              f"setup wait {setup:.2f} s (timeout 600 s: {600 / max(setup, 1e-3):.0f}x margin)")
    print(f"{'run':>8}  {'CLEANFIT_DIST_TIMEOUT':>22}  {'result':>7}  {'wall s':>7}  margin to the default {DEFAULT_S:g} s")
    for kind, timeouts in (("trainer", [0.5, 1.0]), ("cli", [1.0, 2.0])):
        for timeout_s in timeouts:
            ok, wall, _ = run(kind, timeout_s)
            margin = f"every wait < {timeout_s:g} s: >= {DEFAULT_S / timeout_s:.0f}x" if ok else "-"
            print(f"{kind:>8}  {timeout_s:>22g}  {'ok' if ok else 'failed':>7}  {wall:>7.1f}  {margin}")


def heartbeat(steps: int = 1000, repeats: int = 9) -> None:
    import torch
    import torch.distributed as dist

    from cleanfit.training import distributed
    from cleanfit.training.heartbeat import Heartbeat

    torch.set_num_threads(1)
    server = dist.TCPStore("127.0.0.1", 0, None, True, timeout=datetime.timedelta(seconds=10), wait_for_workers=False)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(server.port))
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 64), torch.randint(0, 2, (64,))

    def loop(interval: float | None) -> float:
        beat = Heartbeat(0, 2, interval, store_timeout_s=10).start() if interval else None
        distributed._heartbeat = beat
        started = time.perf_counter()
        for step in range(steps):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            distributed.note_step(step)
        seconds = time.perf_counter() - started
        if beat is not None:
            beat.stop()
        distributed._heartbeat = None
        return seconds / steps * 1e6

    plans = {"no heartbeat thread (the peer)": None, "heartbeat every 2 s (default)": 2.0,
             "heartbeat every 0.01 s (200x)": 0.01}
    best = {name: float("inf") for name in plans}
    names = list(plans)
    for i in range(repeats):  # each repeat in another order: no plan always runs first
        for name in names[i % 3:] + names[:i % 3]:
            best[name] = min(best[name], loop(plans[name]))
    client = Heartbeat(0, 2, 1.0, store_timeout_s=10)
    store = client.store()
    started = time.perf_counter()
    for i in range(2000):
        store.set("cleanfit/bench", str(i))
    beat_us = (time.perf_counter() - started) / 2000 * 1e6
    distributed._heartbeat = client  # note_step with a heartbeat installed (an attribute write)
    note = min(_note_step_ns(distributed) for _ in range(3))
    distributed._heartbeat = None
    base = best["no heartbeat thread (the peer)"]
    print(f"{'optimizer step (MLP 64-128-2, batch 64)':<40} {'us/step':>8}  vs the peer")
    for name, us in best.items():
        print(f"{name:<40} {us:>8.1f}  {us / base:.3f}x")
    print(f"one beat (store set, localhost): {beat_us:.1f} us; note_step: {note:.0f} ns")


def _note_step_ns(distributed) -> float:
    started = time.perf_counter()
    for step in range(200_000):
        distributed.note_step(step)
    return (time.perf_counter() - started) / 200_000 * 1e9


if __name__ == "__main__":
    if sys.argv[1:2] == ["--timed-cli"]:
        _timed_cli(sys.argv[2:])
    else:
        for part in sys.argv[1:] or ["waits", "heartbeat"]:
            {"waits": waits, "heartbeat": heartbeat}[part]()
