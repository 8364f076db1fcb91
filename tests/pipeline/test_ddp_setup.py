"""Under torchrun, rank 0's setup before training (the run folder, the MLflow store) has its own, long
timeout: a setup slower than CLEANFIT_DIST_TIMEOUT still trains, and a setup that fails on rank 0 stops
every rank at once with one line (real gloo processes, the real CLI)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from _dist import free_port, process_env

SLOW_CLI = Path(__file__).with_name("_setup_cli.py")
TIMEOUT = 240  # a hang fails the test instead of stalling the suite


def _table(folder: Path) -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    frame["y"] = (frame["a"] + frame["b"] + rng.normal(size=120) > 0).astype(int)  # no single column gives it away
    frame.to_csv(folder / "t.csv", index=False)
    (folder / "t.toml").write_text('[data]\npath = "t.csv"\ntarget = "y"\n[model]\nhidden = [8]\n'
                                   '[train]\nepochs = 2\nbatch_size = 16\n[tracking]\nbackend = "none"\n')


def test_a_rank_0_setup_slower_than_the_collective_timeout_still_trains(tmp_path: Path) -> None:
    _table(tmp_path)
    # rank 0 spends 5 s in its setup; the join and every collective must finish within 2 s
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(free_port()), str(SLOW_CLI), "5", "train", "t.toml", "--out", "run", "--json", "r.json"],
                          cwd=tmp_path, env=process_env(CLEANFIT_DIST_TIMEOUT="2"), capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "finished"
    assert json.loads((tmp_path / "r.json").read_text())["epochs"] == 2
    assert "batch:       2 processes x 8 = 16 per step" in done.stdout


def test_a_setup_that_fails_on_rank_0_stops_every_rank_with_one_line(tmp_path: Path) -> None:
    _table(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")  # checkpoint.dir: only rank 0 checks it and fails
    port = str(free_port())
    procs = []
    for rank in (0, 1):  # launched by hand, so each rank's exit code is seen (rank 0 holds the store)
        env = process_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port, CLEANFIT_DIST_TIMEOUT="60", CLEANFIT_SETUP_TIMEOUT="600")
        procs.append(subprocess.Popen([sys.executable, "-m", "cleanfit", "train", "t.toml", "--out", "run", "--set",
                                       f'checkpoint.dir="{tmp_path / "a-file"}"'], cwd=tmp_path, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:  # bounded: a rank left waiting for the timeouts (60 s, 600 s) raises TimeoutExpired
        errs = [p.communicate(timeout=45)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [2, 2], errs
    for err in errs:
        assert "Traceback" not in err, err[-3000:]
    assert errs[0].strip().splitlines()[-1].startswith(f"cleanfit: error: {_problem(tmp_path)}"), errs[0]
    assert errs[1].strip().splitlines()[-1] == _rank_1_line(tmp_path, errs[0]), errs[1]
    assert not (tmp_path / "run" / "run.json").exists()


def test_under_torchrun_a_failed_rank_0_setup_ends_both_ranks_with_exit_code_2(tmp_path: Path) -> None:
    _table(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(free_port()), "-m", "cleanfit", "train", "t.toml", "--out", "run", "--set",
                           f'checkpoint.dir="{tmp_path / "a-file"}"'], cwd=tmp_path, env=process_env(), capture_output=True,
                          text=True, timeout=TIMEOUT)
    lines = [line for line in done.stderr.splitlines() if line.startswith("cleanfit: error: ")]
    assert len(lines) == 2, done.stderr[-3000:]
    rank_0 = next(line for line in lines if "rank 1 of 2" not in line)
    assert rank_0.startswith(f"cleanfit: error: {_problem(tmp_path)}")
    assert _rank_1_line(tmp_path, rank_0) in lines
    # the last rank to exit is not stopped by the agent (SIGTERM, -15): each ends with cleanfit's exit code
    assert done.stderr.count("exitcode  : 2 ") == 2, done.stderr[-3000:]
    assert "site-packages/cleanfit" not in done.stderr and "src/cleanfit" not in done.stderr  # no cleanfit traceback


def _problem(folder: Path) -> str:
    return f"checkpoint.dir = '{folder / 'a-file'}': cannot create it (Not a directory)"


def _rank_1_line(folder: Path, rank_0_line: str) -> str:
    said = rank_0_line.strip().removeprefix("cleanfit: error: ")
    return f"cleanfit: error: rank 1 of 2: rank 0 could not set up the run: {said}; the run did not start"
