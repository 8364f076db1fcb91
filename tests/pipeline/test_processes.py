"""The number of processes is not a hyperparameter: ``train.batch_size`` is the global batch, so
``torchrun --nproc_per_node 2`` trains the run one process trains (real gloo processes, to float rounding)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cleanfit.errors import ConfigError
from cleanfit.pipeline.fit import batch_line, per_process_batch
from _dist import free_port, process_env

TIMEOUT = 240  # a hang fails the test instead of stalling the suite


def _env() -> dict[str, str]:
    return process_env(CLEANFIT_DIST_TIMEOUT="30")


def test_one_and_two_gloo_processes_train_the_same_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 300
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y"], size=n)})
    frame["y"] = np.where(frame["a"] + (frame["c"] == "x") + rng.normal(scale=0.5, size=n) > 0.5, 1, 0)
    frame.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "t.toml").write_text(
        '[data]\npath = "t.csv"\ntarget = "y"\n[model]\nhidden = [16, 8]\n'  # dropout: the default 0.1
        '[train]\nepochs = 2\nbatch_size = 32\nlr = 0.01\n[tracking]\nbackend = "none"\n'
    )
    one = subprocess.run([sys.executable, "-m", "cleanfit", "train", "t.toml", "--out", "one", "--json", "one.json"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(free_port()), "-m", "cleanfit", "train", "t.toml", "--out", "two", "--json", "two.json"],
                         cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "batch:       1 process x 32 = 32 per step" in one.stdout
    assert "batch:       2 processes x 16 = 32 per step" in two.stdout
    a, b = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("one", "two"))
    assert a["metrics"].keys() == b["metrics"].keys()
    for name, value in a["metrics"].items():
        assert b["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    first, second = (torch.load(tmp_path / name / "model.pt", weights_only=True) for name in ("one", "two"))
    for name, tensor in first.items():
        torch.testing.assert_close(second[name], tensor, rtol=1e-5, atol=1e-6)


def test_a_global_batch_that_does_not_divide_over_the_processes_is_a_config_error(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    assert per_process_batch(64) == 16
    assert batch_line(64, accumulate=2) == "4 processes x 16 x 2 accumulated = 128 per step"
    with pytest.raises(ConfigError, match=r"train.batch_size = 30 is the global batch and does not divide over the 4 "
                                          r"processes of this torchrun; set train.batch_size to a multiple of 4"):
        per_process_batch(30)


def test_two_gloo_processes_train_a_table_over_the_budget_as_one_does(tmp_path: Path) -> None:
    # out of core: each process reads the Parquet row groups through its own ParquetPartSource and takes its
    # share of every global batch; the metrics and weights are one process's to float rounding
    rng = np.random.default_rng(4)
    n = 640
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n).astype("float32"),
                          "c": rng.choice(["x", "y", "z"], size=n)})
    frame["y"] = np.where(frame["a"] + (frame["c"] == "x") + rng.normal(scale=0.5, size=n) > 0.5, "yes", "no")
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=100)
    (tmp_path / "t.toml").write_text(
        '[data]\npath = "t.parquet"\ntarget = "y"\n[split]\nval = 0.1\n[audit]\nmemory = "1KB"\n[model]\nhidden = [16, 8]\n'
        '[train]\nepochs = 2\nbatch_size = 32\nlr = 0.01\n[tracking]\nbackend = "none"\n'
    )
    runs = {}
    for name, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--nproc_per_node", "2",
                                                 "--master_port", str(free_port())])):
        command = [sys.executable, *launcher, "-m", "cleanfit", "train", "t.toml", "--out", name, "--json", f"{name}.json"]
        done = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())
        assert runs[name]["data"]["loading"] == "out-of-core", name
        assert "trained out of core" in done.stdout and done.stdout.count("trained out of core") == 1  # rank 0 says it
    a, b = runs["one"], runs["two"]
    assert a["split"] == b["split"] and a["split"]["method"] == "row-stratify"
    assert a["metrics"].keys() == b["metrics"].keys() and "test_accuracy" in a["metrics"]
    for name, value in a["metrics"].items():
        assert b["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    first, second = (torch.load(tmp_path / name / "model.pt", weights_only=True) for name in ("one", "two"))
    for name, tensor in first.items():
        torch.testing.assert_close(second[name], tensor, rtol=1e-5, atol=1e-6)
