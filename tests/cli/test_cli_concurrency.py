"""One process per run folder, and signals: real ``cleanfit train`` processes, real MLflow.

The second process is started while the first is stopped (SIGSTOP, sent by itself right after its
first checkpoint, see ``_signal_cli.py``), so "at once" is a fact of the test, not a race.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cleanfit.pipeline.demo import write_breast_cancer

SIGNAL_CLI = Path(__file__).with_name("_signal_cli.py")
SMALL = ["--set", "model.hidden=[8]", "--set", "train.epochs=3", "--set", "train.batch_size=64",
         "--set", "checkpoint.every=2"]


@pytest.fixture
def cancer(tmp_path: Path) -> Path:
    write_breast_cancer(tmp_path / "cancer.csv")
    config = tmp_path / "cancer.toml"
    config.write_text('[data]\npath = "cancer.csv"\ntarget = "diagnosis"\n')
    return config


def _start(tmp_path: Path, signame: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(SIGNAL_CLI), signame, "1", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_process_on_a_run_folder_exits_2_naming_the_folder_and_the_holder(
    mlflow_tracking_uri: str, tmp_path: Path, cancer: Path
) -> None:
    from mlflow.tracking import MlflowClient

    args = ["train", str(cancer), "--out", "out", "--resume", *SMALL]
    first = _start(tmp_path, "SIGSTOP", *args)
    _, status = os.waitpid(first.pid, os.WUNTRACED)  # stopped right after its first checkpoint
    assert os.WIFSTOPPED(status), "the first run ended before its first checkpoint"
    try:
        second = subprocess.run([sys.executable, "-m", "cleanfit", *args], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err

    assert second.returncode == 2, second.stderr
    line = second.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert str(tmp_path / "out") in line and f"PID {first.pid}" in line

    run_id = json.loads((tmp_path / "out" / "run.json").read_text())["run_id"]
    client = MlflowClient(mlflow_tracking_uri)
    assert client.get_run(run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
    assert steps and len(steps) == len(set(steps))  # each step once: only one process trained


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, cancer: Path) -> None:
    args = ["train", str(cancer), "--out", "out", "--resume", *SMALL, "--set", "tracking.backend=none"]
    killed = _start(tmp_path, "SIGKILL", *args)
    killed.communicate(timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / "out" / ".cleanfit.lock").exists()  # the file stays; the kernel freed the lock
    resumed = subprocess.run([sys.executable, "-m", "cleanfit", *args], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr


def test_sigterm_mid_run_is_handled_like_ctrl_c_and_the_run_resumes(
    mlflow_tracking_uri: str, tmp_path: Path, cancer: Path
) -> None:
    from mlflow.tracking import MlflowClient

    args = ["train", str(cancer), "--out", "out", *SMALL]
    terminated = _start(tmp_path, "SIGTERM", *args)  # SIGTERM to itself right after its first checkpoint
    _, err = terminated.communicate(timeout=300)
    assert terminated.returncode == 143, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("cleanfit: terminated (SIGTERM)")
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["status"] == "killed"
    client = MlflowClient(mlflow_tracking_uri)
    assert client.get_run(record["run_id"]).info.status == "KILLED"

    resumed = subprocess.run([sys.executable, "-m", "cleanfit", *args, "--resume"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert client.get_run(record["run_id"]).info.status == "FINISHED"
