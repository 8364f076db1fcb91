"""One task rule: ``cleanfit audit`` and ``cleanfit train`` judge a target the same way and split it the same way.

A 30-value integer target is where the two used to disagree (the audit read it as classes and
stratified, ``cleanfit train`` read it as a regression target and split at random).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _cli import run_cli
from cleanfit.data.tables import MAX_CLASSES, infer_task


def _table(path: Path, n_values: int, n: int = 300) -> Path:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    df["score"] = np.clip(np.round(n_values / 2 + 4 * df["a"] + rng.normal(size=n)), 0, n_values - 1).astype(int)
    df.loc[: n_values - 1, "score"] = np.arange(n_values)  # every value occurs
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("n_values", [30, 5])
def test_audit_and_train_agree_on_the_task_and_the_split(
    mlflow_tracking_uri: str, tmp_path: Path, n_values: int
) -> None:
    data = _table(tmp_path / "scores.csv", n_values)
    assert pd.read_csv(data)["score"].nunique() == n_values
    expected = "regression" if n_values > MAX_CLASSES else "classification"

    audit_json = tmp_path / "audit.json"
    code, out, err = run_cli(["audit", str(data), "--target", "score", "--test", "0.2", "--val", "0.1",
                           "--seed", "3", "--json", str(audit_json)])
    assert code == 0, out + err
    audited = json.loads(audit_json.read_text())

    config = tmp_path / "scores.toml"
    config.write_text(f'[data]\npath = "scores.csv"\ntarget = "score"\n\n[tracking]\nuri = "{mlflow_tracking_uri}"\n')
    train_json = tmp_path / "train.json"
    code, out, err = run_cli(["train", str(config), "--out", str(tmp_path / "out"), "--json", str(train_json),
                           "--set", "train.epochs=1", "--set", "model.hidden=[8]", "--set", "split.test=0.2",
                           "--set", "split.val=0.1", "--set", "split.seed=3", "--set", "audit.fail_on=\"never\""])
    assert code == 0, out + err
    trained = json.loads(train_json.read_text())

    assert audited["task"] == trained["task"] == expected
    assert audited["split"]["method"] == trained["split"]["method"] == ("random" if expected == "regression" else "stratify")
    assert audited["split"]["fingerprint"] == trained["split"]["fingerprint"]
    run_file = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_file["split_fingerprint"] == audited["split"]["fingerprint"]


def test_one_rule_for_integer_targets() -> None:
    assert infer_task(np.arange(MAX_CLASSES) % MAX_CLASSES) == "classification"
    assert infer_task(np.arange(MAX_CLASSES + 1)) == "regression"
    assert infer_task(np.arange(30).astype(float)) == "regression"
    assert infer_task(pd.Series(["a", "b"] * 20)) == "classification"
