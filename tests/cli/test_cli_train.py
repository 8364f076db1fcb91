"""``cleanfit train``, ``repro`` and ``demo`` end to end: real subprocesses, real files, real MLflow.

Scores stated and checked: scikit-learn's breast cancer data (569 rows, 30 features), an MLP with
one hidden layer of 32 units, 10 epochs, reaches a test accuracy of about 0.95; we require >= 0.9.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from _cli import run_cli
from cleanfit.pipeline.demo import write_breast_cancer

SIGNAL_CLI = Path(__file__).with_name("_signal_cli.py")  # the real command, SIGKILLed at a chosen checkpoint
FAST = ["--set", "model.hidden=[32]", "--set", "train.epochs=10", "--set", "train.batch_size=32", "--set", "train.lr=3e-3"]


def cleanfit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real command, in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "cleanfit", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def write_config(path: Path, data: str, target: str = "diagnosis", extra: str = "") -> Path:
    path.write_text(f'[data]\npath = "{data}"\ntarget = "{target}"\n{extra}')
    return path


@pytest.fixture
def cancer(tmp_path: Path) -> Path:
    write_breast_cancer(tmp_path / "cancer.csv")
    return write_config(tmp_path / "cancer.toml", "cancer.csv")


def test_train_killed_then_resumed_ends_as_the_uninterrupted_run_scores_and_is_tracked(
    mlflow_tracking_uri: str, tmp_path: Path, cancer: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from cleanfit.pipeline.run import train_config

    settings = [a for a in FAST if a != "--set"]
    reference = train_config(cancer, out=tmp_path / "reference", quiet=True, overrides=[*settings, "tracking.backend=none"])

    # The real command, killed hard right after its first checkpoint is on disk (checkpoints every
    # 3 steps): _signal_cli.py SIGKILLs itself at that point, so no timing decides where it dies.
    out, args = tmp_path / "out", ["train", str(cancer), "--out", "out", *FAST, "--set", "checkpoint.every=3"]
    killed = subprocess.run([sys.executable, str(SIGNAL_CLI), "SIGKILL", "1", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "metrics.json").exists()
    killed_run = json.loads((out / "run.json").read_text())["run_id"]

    result = cleanfit(*args, "--resume", "--json", "run.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run.json").read_text())

    # the same run: bit-identical to the uninterrupted one, in the same MLflow run
    assert report["metrics"] == reference.metrics
    weights = torch.load(out / "model.pt", weights_only=True)
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(weights[name], tensor), name
    assert report["mlflow"]["run_id"] == killed_run

    # a sensible model: breast cancer, 10 epochs of a 32-unit MLP
    assert report["task"] == "classification" and report["split"]["method"] == "stratify"
    assert report["metrics"]["test_accuracy"] >= 0.9
    assert report["metrics"]["test_auc"] >= 0.95
    assert report["audit"]["passed"]
    assert (out / "report.html").read_text().startswith("<!doctype html>")
    assert "epoch 10/10" in result.stderr  # the Trainer's log lines reach the terminal
    assert re.search(r"resumed from step 3 of \d+ \(epoch 1 of 10\)", result.stderr), result.stderr[-2000:]
    assert f"mlflow ui --backend-store-uri {mlflow_tracking_uri}" in result.stdout

    client = MlflowClient(mlflow_tracking_uri)
    run = client.get_run(killed_run)
    assert run.info.status == "FINISHED"
    assert run.data.params["split.method"] == "stratify"
    assert run.data.params["split.fingerprint"] == report["split"]["fingerprint"]
    assert run.data.params["data.fingerprint"].startswith("(569, 31) dataframe")
    assert run.data.metrics["test_accuracy"] == pytest.approx(report["metrics"]["test_accuracy"])
    assert {"report.html", "metrics.json", "model.pt", "model"} <= {a.path for a in client.list_artifacts(killed_run)}
    assert {"model/MLmodel", "model/artifacts"} <= {a.path for a in client.list_artifacts(killed_run, "model")}
    assert f"serve it:    mlflow models serve -m runs:/{killed_run}/model --env-manager local" in result.stdout
    assert "batch:       1 process x 32 = 32 per step" in result.stdout


def test_the_audit_gate_stops_a_leaky_table(tmp_path: Path) -> None:
    write_breast_cancer(tmp_path / "leaky.csv", leak=True)
    config = write_config(tmp_path / "leaky.toml", "leaky.csv")
    code, _, err = run_cli(["train", str(config), "--out", str(tmp_path / "out"), "--json", str(tmp_path / "audit.json")])
    assert code == 1, err
    assert "Traceback" not in err
    assert "target-leakage" in err and "lab_flag" in err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written
    assert json.loads((tmp_path / "audit.json").read_text())["passed"] is False


def test_repro_reports_identical_and_finds_where_runs_diverge(tmp_path: Path, cancer: Path) -> None:
    small = ["--set", "model.hidden=[8]", "--set", "train.epochs=2"]
    code, out, err = run_cli(["repro", str(cancer), *small, "--json", str(tmp_path / "repro.json")])
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("identical: both runs ended with bit-identical weights")
    assert json.loads((tmp_path / "repro.json").read_text())["identical"] is True

    # a model factory that draws its initial weights from unseeded randomness
    (tmp_path / "unseeded.py").write_text(
        "import os, torch\n"
        "def make(n_features, n_outputs):\n"
        "    model = torch.nn.Linear(n_features, n_outputs)\n"
        "    with torch.no_grad():\n"
        "        seed = int.from_bytes(os.urandom(4), 'little')\n"
        "        model.weight.add_(torch.randn(model.weight.shape, generator=torch.Generator().manual_seed(seed)))\n"
        "    return model\n"
    )
    code, out, err = run_cli(["repro", str(cancer), *small, "--set", 'model.module="unseeded:make"'])
    assert code == 1, err
    assert "NOT identical" in out
    assert re.search(r"they diverge first at step \d+ \(epoch 1\): train_loss", out), out


def test_repro_never_writes_into_the_configs_checkpoint_dir(tmp_path: Path, cancer: Path) -> None:
    # both runs used to share checkpoint.dir: the second refused it ("checkpoints of an unknown run")
    mine = tmp_path / "my-checkpoints"
    code, out, err = run_cli(["repro", str(cancer), "--set", "model.hidden=[4]", "--set", "train.epochs=1",
                              "--set", f'checkpoint.dir="{mine}"'])
    assert code == 0, err
    assert "identical" in out and not mine.exists()


def test_demo_runs_the_whole_discipline(mlflow_tracking_uri: str, tmp_path: Path) -> None:
    code, out, err = run_cli(["demo", "--out", str(tmp_path / "demo")])
    assert code == 0, err
    demo = tmp_path / "demo"
    assert "No leakage found." in out
    assert "critical  target-leakage  Column 'lab_flag'" in out
    assert (demo / "run" / "report.html").exists() and (demo / "audit_leaky.html").exists()
    assert list((demo / "run" / "checkpoints").glob("*.ckpt"))
    assert json.loads((demo / "run" / "metrics.json").read_text())["metrics"]["test_accuracy"] >= 0.9
    assert f"mlflow ui --backend-store-uri sqlite:///{demo}/mlflow.db" in out
    assert list((demo / "mlruns").rglob("report.html"))  # MLflow's artifacts live under the demo folder too
    # the config it leaves names that store, so the suggested `cleanfit train demo.toml --set ...` shows up there
    from cleanfit.pipeline.config import load_config

    assert load_config(demo / "demo.toml").tracking.uri == f"sqlite:///{demo}/mlflow.db"


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing written


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    write_breast_cancer(tmp_path / "cancer.csv")
    frame = pd.read_csv(tmp_path / "cancer.csv")
    (tmp_path / "empty.csv").write_text("")
    frame.assign(diagnosis=frame["diagnosis"].where(frame.index != 3)).to_csv(tmp_path / "nan.csv", index=False)
    frame.assign(diagnosis="benign").to_csv(tmp_path / "one.csv", index=False)
    frame.assign(site="north").to_csv(tmp_path / "text.csv", index=False)
    frame.iloc[[0, 1, 2, 3, 5, 7, 19, 20, 21, 22]].to_csv(tmp_path / "tiny.csv", index=False)
    cases = {
        "missing-config": (["train", str(tmp_path / "nope.toml")], "nope.toml: config file not found"),
        "missing-data": (["train", str(write_config(tmp_path / "a.toml", "gone.csv"))], "gone.csv"),
        "unknown-column": (["train", str(write_config(tmp_path / "b.toml", "cancer.csv", "diagnosys"))], "did you mean 'diagnosis'"),
        "empty-csv": (["train", str(write_config(tmp_path / "c.toml", "empty.csv"))], "the file is empty"),
        "nan-target": (["train", str(write_config(tmp_path / "d.toml", "nan.csv"))], "1 of 569 rows have no target value"),
        "one-class": (["train", str(write_config(tmp_path / "e.toml", "one.csv"))], "one class ('benign')"),
        "no-encoding": (["train", str(write_config(tmp_path / "f.toml", "text.csv", extra='[preprocess]\ncategorical = "none"\n'))], "'site' are not numeric"),
        "too-few-rows": (["train", str(write_config(tmp_path / "t.toml", "tiny.csv")), "--set", "split.by=\"random\""], "at least 10 train rows"),
        "typo": (["train", str(write_config(tmp_path / "g.toml", "cancer.csv", extra="[train]\nepoch = 3\n"))], "g.toml line 5: unknown key 'train.epoch'; did you mean 'epochs'?"),
        "bad-set": (["train", str(write_config(tmp_path / "h.toml", "cancer.csv")), "--set", "train.lr=fast"], "--set train.lr=fast"),
        "infinite-lr": (["train", str(write_config(tmp_path / "i.toml", "cancer.csv", extra="[train]\nlr = inf\n"))], "i.toml line 5: train.lr = inf"),
        "checkpoint-dir": (["train", str(write_config(tmp_path / "k.toml", "cancer.csv")), "--set", f'checkpoint.dir="{tmp_path / "cancer.csv" / "ckpt"}"'], "checkpoint.dir = "),
        # a --json path that cannot be written fails before training, not after it
        "unwritable-json": (["train", str(write_config(tmp_path / "j.toml", "cancer.csv")), "--json", str(tmp_path / ("x" * 300 + ".json"))], "--json"),
    }
    return cases


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    for name, (args, expected) in _bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{name}"
        code, _, err = run_cli([*args, "--out", str(out)])
        assert code == 2, (name, err)
        assert len(err.strip().splitlines()) == 1 and expected in err, (name, err)
        assert not out.exists(), name


def test_an_output_folder_holding_another_run_is_refused_and_a_rerun_goes_to_a_numbered_sibling(
    tmp_path: Path, cancer: Path
) -> None:
    out = tmp_path / "out"
    small = ["--set", "model.hidden=[4]", "--set", "train.epochs=1", "--set", "tracking.backend=none"]
    assert run_cli(["train", str(cancer), "--out", str(out), *small])[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    for number in (2, 3):  # the same config again: a numbered sibling, said so; the first run untouched
        code, stdout, err = run_cli(["train", str(cancer), "--out", str(out), *small])
        sibling = tmp_path / f"out-{number}"
        assert code == 0, err
        assert f"{out} already holds this run; training it again in {sibling} (pass --resume" in stdout
        assert (sibling / "model.pt").exists() and json.loads((sibling / "run.json").read_text())["status"] == "finished"
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    code, _, err = run_cli(["train", str(cancer), "--out", str(out), *small, "--set", "train.lr=0.01"])
    assert code == 2 and "holds another run" in err and "--out NEW_DIR" in err
    code, _, err = run_cli(["train", str(cancer), "--out", str(out), *small, "--set", "train.lr=0.01", "--resume"])
    assert code == 2 and "holds another run" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing overwritten

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "report.html").write_text("my own file")
    code, _, err = run_cli(["train", str(cancer), "--out", str(tmp_path / "mine"), *small])
    assert code == 2 and "holds files that are not a cleanfit run" in err
    assert (tmp_path / "mine" / "report.html").read_text() == "my own file"


# ---------------------------------------------------------------- fuzz: malformed configs and tables

_KEYS = st.sampled_from([
    "data.target", "data.drop", "data.time", "data.group", "data.task", "split.by", "split.test", "split.val",
    "split.gap", "preprocess.impute", "preprocess.scale", "preprocess.categorical", "model.hidden",
    "model.module", "train.epochs", "train.batch_size", "train.accumulate", "train.optimizer", "train.lr",
    "train.schedule", "train.precision", "train.early_stopping", "checkpoint.every", "audit.fail_on",
    "trian.lr", "train.lrr", "data",
])
_VALUES = st.one_of(
    st.sampled_from(["y", "x0", "x1", "nope", "0", "-1", "1", "2", "0.5", "1e9", "[]", "[0]", "[2]", '["x0"]',
                     "time", "group", "stratify", "random", "fp16", "bf16", "never", "none", "os:getcwd", "x:y", "inf", "nan"]),
    st.text(max_size=6),
)
_MUTATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("cell"), st.integers(0, 60), st.integers(0, 2),
                  st.sampled_from(["", "NaN", "inf", "-inf", "a", "1e400", '"', "1,5", "x y"])),
        st.tuples(st.just("header"), st.sampled_from(["x0,x0,y", "x0,x1", "y", "", "x0,x1,y,z", "a,b,c"])),
        st.tuples(st.just("truncate"), st.integers(0, 3)),
        st.tuples(st.just("constant"), st.integers(0, 2)),
        st.tuples(st.just("bytes"), st.binary(max_size=30)),
    ),
    max_size=2,
)


def _table(n: int, y_kind: str, seed: int, mutations: list) -> bytes:
    """A small table (x0 numeric, x1 text, y) with the given mutations applied."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n).round(3)
    x1 = rng.choice(["red", "green", "blue"], size=n)
    y = (x0 + rng.normal(size=n) > 0).astype(int) if y_kind == "class" else (x0 + rng.normal(size=n)).round(3)
    header, rows = "x0,x1,y", [[str(a), str(b), str(c)] for a, b, c in zip(x0, x1, y)]
    for mutation in mutations:
        kind = mutation[0]
        if kind == "cell" and rows:
            rows[mutation[1] % len(rows)][mutation[2]] = mutation[3]
        elif kind == "header":
            header = mutation[1]
        elif kind == "truncate":
            rows = rows[: mutation[1]]
        elif kind == "constant":
            for row in rows:
                row[mutation[1]] = "1"
        elif kind == "bytes":
            return mutation[1]
    return ("\n".join([header, *(",".join(r) for r in rows)]) + "\n").encode()


@given(
    n=st.integers(8, 40),
    y_kind=st.sampled_from(["class", "value"]),
    seed=st.integers(0, 2**16),
    mutations=_MUTATIONS,
    overrides=st.lists(st.tuples(_KEYS, _VALUES), max_size=2),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_fuzzed_configs_and_tables_never_crash(
    tmp_path: Path, n: int, y_kind: str, seed: int, mutations: list, overrides: list
) -> None:
    case = tmp_path / f"case-{time.monotonic_ns()}"
    case.mkdir()
    (case / "t.csv").write_bytes(_table(n, y_kind, seed, mutations))
    config = write_config(case / "c.toml", "t.csv", target="y")
    sets = [a for key, value in overrides for a in ("--set", f"{key}={value}")]
    quick = ["--set", "train.epochs=1", "--set", "model.hidden=[2]", "--set", "tracking.backend=none",
             "--set", 'audit.fail_on="never"']
    code, _, err = run_cli(["train", str(config), "--out", str(case / "out"), *quick, *sets])
    event(f"exit {code}")
    assert code in (0, 1, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err


def test_a_failed_tracking_store_is_reported_once_and_the_run_succeeds(tmp_path: Path, cancer: Path) -> None:
    (tmp_path / "a-file").write_text("")
    store = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"  # cannot be opened: its folder is a file
    proc = cleanfit("train", str(cancer), "--out", str(tmp_path / "out"), "--set", f'tracking.uri="{store}"',
                    "--set", "train.epochs=1", "--set", "model.hidden=[4]", cwd=tmp_path)  # real warning filters
    code, out, err = proc.returncode, proc.stdout, proc.stderr
    assert code == 0, err
    assert err.count("MLflow tracking failed") == 1 and "TrackingWarning" not in err, err
    assert "tracking failed (see the warning above); what it missed is in " + str(tmp_path / "out") in out
