"""A new MLflow SQLite store under concurrent first use: real ``cleanfit train`` processes, a real store.

Three trainings start at once against a SQLite file that does not exist yet. MLflow migrates a new
store on first open; without the lock beside the database two of them would fail the migration
and their runs would go only to the fallback file. All three runs must be in the store, FINISHED,
with every epoch's metrics.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cleanfit.pipeline.demo import write_breast_cancer

EPOCHS = 2


def test_three_concurrent_first_uses_of_a_new_store_lose_nothing(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    write_breast_cancer(tmp_path / "cancer.csv")
    (tmp_path / "cancer.toml").write_text('[data]\npath = "cancer.csv"\ntarget = "diagnosis"\n')
    db = tmp_path / "store" / "new.db"
    uri = f"sqlite:///{db}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1"}
    args = ["--set", "model.hidden=[8]", "--set", f"train.epochs={EPOCHS}", "--set", "train.batch_size=128"]
    procs = [
        subprocess.Popen([sys.executable, "-m", "cleanfit", "train", "cancer.toml", "--out", f"out{i}", *args],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, _, err in results:
        assert code == 0, err
        assert "unlogged" not in err.lower() and "could not" not in err, err

    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 3
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "train_loss")
        assert sorted(m.step for m in history) == sorted({m.step for m in history})  # no step twice
        assert len(history) >= EPOCHS
        assert "test_loss" in run.data.metrics
    assert not list(tmp_path.glob("out*/*unlogged*"))
