"""Shared test fixtures.

``mlflow_tracking_uri``: a real, migrated MLflow SQLite store private to one test.

Creating and migrating an MLflow SQLite database costs seconds, so one database is built per test
session and each test gets a byte copy of it. Use it by naming the fixture::

    def test_logs_params(mlflow_tracking_uri):
        tracker = MLflowTracker()            # picks up MLFLOW_TRACKING_URI
        ...
        client = MlflowClient(mlflow_tracking_uri)

Inside the test the working directory is ``tmp_path``, ``MLFLOW_TRACKING_URI`` is
``sqlite:///<tmp_path>/mlflow.db`` and every artifact lands under ``<tmp_path>/mlruns`` (never in the
repository or the caller's working directory). Both are undone after the test.

``run_cli(argv) -> (code, stdout, stderr)``, the CLI in the test's process, lives in ``tests/_cli.py``; this
folder is put on ``sys.path`` here so every test folder can ``from _cli import run_cli``.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

_DB_NAME = "mlflow.db"


if str(Path(__file__).parent) not in sys.path:  # tests/_cli.py, importable from every test folder
    sys.path.insert(0, str(Path(__file__).parent))

def _sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def _mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated MLflow SQLite database per test session (copied by ``mlflow_tracking_uri``)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    root = tmp_path_factory.mktemp("mlflow-template")
    db = root / _DB_NAME
    # Creating the store runs every migration and inserts the "Default" experiment (id 0).
    store = SqlAlchemyStore(_sqlite_uri(db), str(root / "mlruns"))
    store.engine.dispose()
    return db


@pytest.fixture
def mlflow_tracking_uri(
    _mlflow_template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A private copy of the migrated MLflow store; returns its ``sqlite:///`` tracking URI.

    Sets ``MLFLOW_TRACKING_URI`` and chdirs into ``tmp_path`` for the test. MLflow's SQLite store
    puts a new experiment's artifacts under ``<working directory>/mlruns/<experiment id>`` (its
    default artifact root ``./mlruns``, resolved when the store is first opened), so artifacts land
    in ``tmp_path/mlruns``; the copied "Default" experiment is repointed there as well.
    """
    db = tmp_path / _DB_NAME
    shutil.copyfile(_mlflow_template_db, db)
    artifacts = tmp_path / "mlruns"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            ((artifacts / "0").as_uri(),),
        )
    conn.close()
    uri = _sqlite_uri(db)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests use tiny models: one intra-op thread each, so pytest-xdist's workers do not contend for
    the cores (subprocess tests set their own)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
