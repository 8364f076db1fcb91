"""MLflowTracker against a real MLflow SQLite store (see the ``mlflow_tracking_uri`` fixture)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

import cleanfit as cf
from cleanfit.tracking import environment as _tracking_env
from cleanfit.errors import ConfigError
from cleanfit.tracking import (
    MLflowTracker, NullTracker, Tracker, TrackingWarning, data_fingerprint, environment_params, make_tracker,
    replay_unlogged,
)


def _history(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _unlogged(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the protocol and the shorthand ---------------------------------------------------------------
def test_make_tracker_and_protocol():
    assert isinstance(make_tracker(None), NullTracker)
    assert isinstance(make_tracker("mlflow"), MLflowTracker)
    mine = MLflowTracker("x")
    assert make_tracker(mine) is mine
    assert isinstance(mine, Tracker) and isinstance(NullTracker(), Tracker)
    for bad in ("wandb", 3, object()):
        with pytest.raises(ConfigError, match="not a tracker"):
            make_tracker(bad)


def test_null_tracker_does_nothing(tmp_path):
    t = NullTracker()
    assert t.start(run_id="abc") is None and t.run_id is None
    t.log_params({"a": 1})
    t.log_metrics({"loss": 1.0}, step=1)
    t.log_artifact(tmp_path / "missing.txt")
    t.set_tags({"a": "b"})
    t.flush()
    t.finish("FAILED")
    assert list(tmp_path.iterdir()) == []


# -- what lands in MLflow ------------------------------------------------------------------------
def test_params_metrics_tags_and_artifacts_are_in_mlflow(mlflow_tracking_uri, tmp_path):
    tracker = MLflowTracker(run_name="first")
    run_id = tracker.start()
    assert tracker.start() == run_id  # idempotent
    tracker.log_params({"seed": 0, "optimizer": {"name": "adamw", "lr": 1e-3}, **environment_params()})
    steps = range(1, 1301)  # 2600 values: more than one log_batch chunk of 1000
    for s in steps:
        tracker.log_metrics({"batch_loss": 1.0 / s, "lr": 1e-3 * s}, step=s)
        if s % 100 == 0:
            tracker.log_metrics({"train_loss": 1.0 / s, "val_loss": 2.0 / s, "gap": 1.0 / s}, step=s)
    tracker.set_tags({"diagnosis": "none"})
    (tmp_path / "notes.txt").write_text("hello")
    tracker.log_artifact(tmp_path / "notes.txt", artifact_path="extra")
    tracker.finish()

    client = MlflowClient(mlflow_tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "first"
    assert client.get_experiment(run.info.experiment_id).name == "cleanfit"
    assert run.data.params["seed"] == "0" and run.data.params["optimizer.lr"] == "0.001"
    assert run.data.params["torch_version"] == torch.__version__
    assert run.data.tags["diagnosis"] == "none"
    assert _history(client, run_id, "batch_loss") == [(s, 1.0 / s) for s in steps]
    assert _history(client, run_id, "lr") == [(s, 1e-3 * s) for s in steps]
    assert _history(client, run_id, "val_loss") == [(s, 2.0 / s) for s in range(100, 1301, 100)]
    assert [a.path for a in client.list_artifacts(run_id, "extra")] == ["extra/notes.txt"]
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path)
    assert not list(tmp_path.glob("cleanfit-unlogged-*"))


def test_default_store_is_sqlite_in_working_directory(_mlflow_template_db, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(_mlflow_template_db, tmp_path / "mlflow.db")  # already migrated: saves seconds
    tracker = MLflowTracker()
    tracker.start()
    tracker.log_metrics({"loss": 0.5}, step=1)
    tracker.finish()
    assert tracker.tracking_uri_ == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert _history(MlflowClient(tracker.tracking_uri_), tracker.run_id, "loss") == [(1, 0.5)]


def test_resume_keeps_the_run_and_does_not_duplicate_steps(mlflow_tracking_uri):
    first = MLflowTracker()
    run_id = first.start()
    first.log_params({"epochs": 3})
    for s in range(1, 11):  # the checkpoint was at step 6; steps 7..10 were sent before the crash
        first.log_metrics({"batch_loss": float(s)}, step=s)
    first.flush()  # the process dies here without finishing

    resumed = MLflowTracker()
    assert resumed.start(run_id=run_id) == run_id
    resumed.log_params({"epochs": 3})  # the same params again: accepted, not an error
    with pytest.warns(TrackingWarning, match="epochs"):
        resumed.log_params({"epochs": 5})  # params cannot change in MLflow: said, not lost silently
    for s in range(7, 16):  # the Trainer replays from the checkpoint's step
        resumed.log_metrics({"batch_loss": float(s)}, step=s)
    resumed.finish()

    client = MlflowClient(mlflow_tracking_uri)
    assert _history(client, run_id, "batch_loss") == [(s, float(s)) for s in range(1, 16)]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["epochs"] == "3"
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_context_manager_ends_failed_or_killed_runs_and_keeps_their_metrics(mlflow_tracking_uri):
    client = MlflowClient(mlflow_tracking_uri)
    for error, status in ((ValueError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")):
        with pytest.raises(type(error)):
            with MLflowTracker() as tracker:
                for s in range(5):
                    tracker.log_metrics({"batch_loss": s / 10}, step=s)
                raise error
        assert client.get_run(tracker.run_id).info.status == status
        assert _history(client, tracker.run_id, "batch_loss") == [(s, s / 10) for s in range(5)]


def test_bad_metric_name_and_logging_after_finish_are_config_errors(mlflow_tracking_uri):
    tracker = MLflowTracker()
    with pytest.raises(ConfigError, match="'loss\\?'"):
        tracker.log_metrics({"loss?": 1.0}, step=0)
    tracker.finish()
    with pytest.raises(ConfigError, match="is finished"):
        tracker.log_metrics({"loss": 1.0}, step=1)
    first = tracker.run_id
    assert tracker.start() != first  # an explicit start() after finish() opens a new run
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.finish()
    assert _history(MlflowClient(mlflow_tracking_uri), tracker.run_id, "loss") == [(1, 1.0)]


# -- several processes, exit paths ---------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import sys
    from cleanfit.tracking.mlflow_tracker import MLflowTracker
    name, steps, finish = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "finish"
    tracker = MLflowTracker(run_name=name)
    tracker.start()
    for s in range(steps):
        tracker.log_metrics({"batch_loss": s / steps, "lr": 0.1}, step=s)
    if finish:
        tracker.finish()
    print("mlflow imported here:", "mlflow" in sys.modules)
    print(tracker.run_id)
    # without finish(): the atexit handler must still send everything and end the run
""")


def test_two_processes_log_to_the_same_store_at_once(mlflow_tracking_uri, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    steps = 1500
    children = [
        subprocess.Popen([sys.executable, str(script), name, str(steps), how], stdout=subprocess.PIPE, text=True)
        for name, how in (("a", "finish"), ("b", "atexit"))
    ]
    outputs = [child.communicate(timeout=120)[0].strip().splitlines() for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert all("mlflow imported here: False" in out for out in outputs)  # MLflow runs in the sender process
    run_ids = [out[-1] for out in outputs]
    client = MlflowClient(mlflow_tracking_uri)
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert _history(client, run_id, "batch_loss") == [(s, s / steps) for s in range(steps)]
        assert len(client.get_metric_history(run_id, "lr")) == steps
    assert not list(tmp_path.glob("cleanfit-unlogged-*"))


# -- a store that fails ---------------------------------------------------------------------------
def test_unreachable_store_training_goes_on_and_values_go_to_a_local_file(mlflow_tracking_uri, tmp_path):
    (tmp_path / "not-a-db").mkdir()  # SQLite cannot open a directory: an unusable store
    tracker = MLflowTracker(tracking_uri=f"sqlite:///{tmp_path / 'not-a-db'}", run_name="offline",
                            unlogged_dir=tmp_path / "out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert tracker.start() is None
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x, y = torch.randn(32, 3), torch.randn(32, 1)
        tracker.log_params({"lr": 0.1})
        losses = []
        for s in range(20):  # a real training loop that goes on
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            tracker.log_metrics({"batch_loss": losses[-1]}, step=s)
        (tmp_path / "report.html").write_text("<html></html>")
        tracker.log_artifact(tmp_path / "report.html")
        tracker.set_tags({"diagnosis": "none"})
        tracker.finish()
    reported = [w for w in caught if issubclass(w.category, TrackingWarning)]
    assert len(reported) == 1 and "not-a-db" in str(reported[0].message)
    assert losses[-1] < losses[0]
    records = _unlogged(tracker.unlogged_path_)
    assert tracker.unlogged_path_.parent == tmp_path / "out"
    assert tracker.unlogged_path_.name.startswith("cleanfit-unlogged-offline-")
    assert [(r["step"], r["value"]) for r in records if r["kind"] == "metric"] == list(enumerate(losses))
    assert {"kind": "param", "key": "lr", "value": "0.1"}.items() <= next(r for r in records if r["kind"] == "param").items()
    assert any(r["kind"] == "artifact" and r["path"] == str(tmp_path / "report.html") for r in records)
    assert records[-1]["kind"] == "status" and records[-1]["value"] == "FINISHED"

    with pytest.raises(cf.CleanfitError, match="cannot replay"):  # the store is still broken
        replay_unlogged(tracker.unlogged_path_, tracking_uri=tracker.tracking_uri_)
    run_id = replay_unlogged(tracker.unlogged_path_, tracking_uri=mlflow_tracking_uri)
    client = MlflowClient(mlflow_tracking_uri)
    run = client.get_run(run_id)
    assert [(m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, "batch_loss")] == [
        (r["step"], r["value"], r["timestamp"]) for r in records if r["kind"] == "metric"]
    assert run.data.params == {"lr": "0.1"} and run.data.tags["diagnosis"] == "none"
    assert run.info.status == "FINISHED" and [a.path for a in client.list_artifacts(run_id)] == ["report.html"]


def test_store_failing_mid_run_loses_nothing_and_sends_nothing_twice(mlflow_tracking_uri, tmp_path):
    tracker = MLflowTracker()
    run_id = tracker.start()
    for s in range(5):
        tracker.log_metrics({"batch_loss": float(s)}, step=s)
    tracker.flush()
    db = mlflow_tracking_uri.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:  # the store breaks: every metric write now fails
        (schema,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'latest_metrics'").fetchone()
        conn.execute("DROP TABLE latest_metrics")
    conn.close()
    for s in range(5, 12):
        tracker.log_metrics({"batch_loss": float(s)}, step=s)
    with pytest.warns(TrackingWarning, match="could not log metrics"):
        tracker.flush()
    for s in range(12, 15):
        tracker.log_metrics({"batch_loss": float(s)}, step=s)
    tracker.finish()
    in_store = _history(MlflowClient(mlflow_tracking_uri), run_id, "batch_loss")
    in_file = sorted((r["step"], r["value"]) for r in _unlogged(tracker.unlogged_path_) if r["kind"] == "metric")
    assert in_store == [(s, float(s)) for s in range(5)]
    assert in_file == [(s, float(s)) for s in range(5, 15)]
    assert tracker.unlogged_path_ == tmp_path / f"cleanfit-unlogged-{run_id}.jsonl"

    with sqlite3.connect(db) as conn:  # the store is repaired: the file goes in, twice, without duplicates
        conn.execute(schema)
    conn.close()
    for _ in range(2):
        assert replay_unlogged(tracker.unlogged_path_) == run_id
        assert _history(MlflowClient(mlflow_tracking_uri), run_id, "batch_loss") == [(s, float(s)) for s in range(15)]


# -- the Trainer through the protocol -------------------------------------------------------------
def test_trainer_run_is_tracked(mlflow_tracking_uri, tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), loss=torch.nn.functional.mse_loss,
                         tracker=MLflowTracker(run_name="trainer"), progress=False, device="cpu")
    history = trainer.fit(cf.Batches((x, y), 16), cf.Batches((x, y), 32, shuffle=False), epochs=2)
    client = MlflowClient(mlflow_tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cleanfit").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["batch_size"] == "16" and run.data.params["numpy_version"] == np.__version__
    val = _history(client, run.info.run_id, "val_loss")
    assert [v for _, v in val] == pytest.approx(history.column("val_loss"))
    assert client.get_metric_history(run.info.run_id, "batch_loss")
    assert "report.html" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_trainer_resume_continues_the_same_run_without_duplicates(mlflow_tracking_uri, tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randn(64, 1)

    def fit(epochs, resume):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
        trainer = cf.Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05), loss=torch.nn.functional.mse_loss,
                             tracker=MLflowTracker(), progress=False, device="cpu", checkpoint_dir=tmp_path / "ckpt")
        return trainer.fit(cf.Batches((x, y), 16), cf.Batches((x, y), 32, shuffle=False), epochs=epochs, resume=resume)

    fit(2, False)
    history = fit(4, True)
    client = MlflowClient(mlflow_tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cleanfit").experiment_id])
    val = _history(client, run.info.run_id, "val_loss")
    assert [v for _, v in val] == pytest.approx(history.column("val_loss")) and len(val) == 4
    steps = [s for s, _ in _history(client, run.info.run_id, "batch_loss")]
    assert steps == sorted(set(steps)) and steps[-1] == history.epochs[-1]["step"]
    assert run.info.status == "FINISHED"


# -- environment and data fingerprints ------------------------------------------------------------
def test_environment_params_git_commit(tmp_path):
    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    assert "git_commit" not in environment_params(tmp_path)
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "a")
    params = environment_params(tmp_path)
    assert params["git_commit"] == git("rev-parse", "HEAD") and params["git_dirty"] == "false"
    (tmp_path / "a.txt").write_text("b")
    assert environment_params(tmp_path)["git_dirty"] == "true"
    assert params["device_name"] == ("cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(0))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=40), st.data())
def test_fingerprint_is_stable_and_sees_any_change(values, data):
    a = np.array(values, dtype=np.float32)
    assert data_fingerprint(a) == data_fingerprint(a.copy()) == data_fingerprint(torch.from_numpy(a.copy()))
    i = data.draw(st.integers(0, len(a) - 1))
    b = a.copy()
    b[i] = np.float32(0) if b[i] != 0 else np.float32(1)
    assert data_fingerprint(b) != data_fingerprint(a)
    assert data_fingerprint(a[:-1]) != data_fingerprint(a)


def test_fingerprint_of_frames_and_of_big_arrays(monkeypatch):
    import pandas as pd

    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert data_fingerprint(frame) == data_fingerprint(frame.copy())
    assert data_fingerprint(frame) != data_fingerprint(frame.assign(b=["x", "y", "w"]))
    assert data_fingerprint(frame).startswith("(3, 2) dataframe")
    monkeypatch.setattr(_tracking_env, "SAMPLE_BYTES", 800)  # 100 float64 rows: sample every 10th row
    big = np.arange(1000.0)
    changed = big.copy()
    changed[500] = -1.0  # a sampled row
    assert data_fingerprint(changed) != data_fingerprint(big)
    assert data_fingerprint(big[:-1]) != data_fingerprint(big)


def test_a_run_the_store_never_opened_does_not_wait_on_the_sender_at_flush(tmp_path: Path) -> None:
    """An HTTP store that hangs on "open": training must not wait flush_timeout again at every flush."""
    from cleanfit.tracking.sender import Sender
    from cleanfit.tracking.worker import StoreError

    class HangingSender(Sender):  # never starts a worker: every request waits and times out
        barriers = 0

        def call(self, request, uri, args, timeout):
            raise StoreError(f"the store did not answer {request!r} within {timeout} s")

        def barrier(self, timeout):
            HangingSender.barriers += 1
            return False  # as if the sender were still stuck in "open"

    tracker = MLflowTracker(tracking_uri="http://127.0.0.1:1", unlogged_dir=tmp_path, sender=HangingSender())
    with pytest.warns(TrackingWarning, match="could not open the run"):
        assert tracker.start() is None
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.flush()
        tracker.finish()
    assert HangingSender.barriers == 0
    assert '"key": "loss"' in tracker.unlogged_path_.read_text()
