"""``cleanfit train`` stops on text columns that are not features, and ``data.missing_target``."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from cleanfit.errors import DataError
from cleanfit.pipeline.config import load_config
from cleanfit.pipeline.prepare import prepare


def _wine_with_text(path: Path) -> Path:
    """scikit-learn's wine table, with an ISO date column and a name distinct on every row, as text."""
    X, y = load_wine(return_X_y=True, as_frame=True)
    frame = X.assign(date=pd.date_range("2012-01-01", periods=len(X)).strftime("%Y-%m-%d"),
                     Name=[f"bottle {i}" for i in np.random.default_rng(0).permutation(len(X))],
                     colour=np.where(X["alcohol"] > 13, "red", "white"), cultivar=y.astype(float))
    frame.loc[[5, 60], "cultivar"] = np.nan  # two rows without a target: data.missing_target = "drop"
    frame.to_csv(path, index=False)
    return path


def _cleanfit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cleanfit", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_train_stops_on_text_columns_that_are_not_features_before_writing(tmp_path: Path, mlflow_tracking_uri: str) -> None:
    _wine_with_text(tmp_path / "wine.csv")
    (tmp_path / "run.toml").write_text('[data]\npath = "wine.csv"\ntarget = "cultivar"\nmissing_target = "drop"\n')
    out = tmp_path / "out"
    done = _cleanfit("train", "run.toml", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    for expected in ('"date" (dates stored as text: 176 distinct values)', '"Name" (a distinct value on most rows: 176',
                     'data.time = "date"', 'data.drop = ["Name"]'):
        assert expected in line, line
    assert "colour" not in line  # two levels: an ordinary feature
    assert not out.exists()
    fixed = _cleanfit("train", "run.toml", "--out", str(out), "--set", 'data.time="date"', "--set", 'data.drop=["Name"]',
                      "--set", "train.epochs=1", "--set", "model.hidden=[8]", "--set", "audit.fail_on=never", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert (out / "run.json").exists()
    assert 'data.missing_target = "drop": dropped 2 of 178 rows of wine.csv' in fixed.stderr


def _with_missing_targets(tmp_path: Path) -> Path:
    X, y = load_wine(return_X_y=True, as_frame=True)
    target = y.to_numpy(dtype=float, copy=True)
    target[[3, 50, 100]] = np.nan
    path = tmp_path / "wine.csv"
    X.assign(cultivar=target).to_csv(path, index=False)
    return path


def test_missing_target_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    path = _with_missing_targets(tmp_path)
    with pytest.raises(DataError, match=r'3 of 178 rows have no target value.*data\.missing_target = "drop"'):
        prepare(load_config({"data": {"path": str(path), "target": "cultivar"}}), run_audit=False)


def test_missing_target_drop_drops_those_rows_and_says_how_many(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _with_missing_targets(tmp_path)
    config = load_config({"data": {"path": str(path), "target": "cultivar", "missing_target": "drop"}})
    with caplog.at_level(logging.INFO, logger="cleanfit"):
        prepared = prepare(config, run_audit=False)
    assert len(prepared.frame) == 175
    assert sum(len(prepared.arrays[p][1]) for p in ("train", "val", "test")) == 175
    assert "dropped 3 of 178 rows" in caplog.text
