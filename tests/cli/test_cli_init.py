"""``cleanfit init``: a starter config with every setting, what it inferred, and text columns already dropped;
it parses and trains as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from _cli import run_cli
from cleanfit.pipeline.config import Config, load_config
from cleanfit.pipeline.run import train_config


def patients(path: Path, n: int = 200) -> Path:
    rng = np.random.default_rng(0)
    age = rng.integers(20, 80, size=n)
    frame = pd.DataFrame({
        "patient_id": [f"P-{i:05d}" for i in range(n)],
        "visit": pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "age": age, "bmi": rng.normal(27, 4, size=n), "ward": rng.choice(["north", "south", "east"], size=n),
    })
    frame["outcome"] = np.where(age + rng.normal(0, 10, size=n) > 50, "sick", "well")
    frame.to_csv(path, index=False)
    return path


def test_init_writes_every_setting_with_what_it_inferred_and_it_trains_as_written(mlflow_tracking_uri, tmp_path) -> None:
    (tmp_path / "data").mkdir()
    patients(tmp_path / "data" / "patients.csv")
    out = tmp_path / "cfg" / "cleanfit.toml"
    out.parent.mkdir()
    code, stdout, err = run_cli(["init", str(tmp_path / "data" / "patients.csv"), "--target", "outcome", "--out", str(out)])
    assert code == 0, err
    assert f"wrote {out}" in stdout
    text = out.read_text()
    for section, model in Config.model_fields.items():  # every section and setting is there, set or commented
        assert f"\n[{section}]\n" in text, section
        for key in model.annotation.model_fields:
            assert re.search(rf"^(# )?{key} = .*# \S", text.split(f"[{section}]")[1], re.M), f"{section}.{key}"
    assert '"patient_id",  # identifier-like text (200 distinct values in 200 rows)' in text
    assert '"visit",  # dates stored as text' in text
    config = load_config(out)
    assert config.data.path == str(tmp_path / "data" / "patients.csv")  # relative to the config's folder
    assert config.data.drop == ["patient_id", "visit"]
    assert config.data.task == "classification" and config.split.by == "stratify"
    assert config.train.batch_size == 64 and config.model.hidden == [128, 64] and config.train.epochs == 20
    run = train_config(out, out=tmp_path / "run", quiet=True)  # as written: 20 epochs, MLflow tracking
    assert run.metrics["test_accuracy"] >= 0.7 and run.run_id is not None
    code, _, err = run_cli(["init", str(tmp_path / "data" / "patients.csv"), "--target", "outcome", "--out", str(out)])
    assert code == 2 and "already exists" in err and out.read_text() == text  # never overwritten


def test_init_with_a_time_column_and_bad_columns(tmp_path) -> None:
    data = patients(tmp_path / "p.csv")
    frame = pd.read_csv(data)
    frame.assign(outcome=np.linspace(0, 1, len(frame))).to_csv(tmp_path / "r.csv", index=False)
    code, _, err = run_cli(["init", str(tmp_path / "r.csv"), "--target", "outcome", "--time", "visit",
                            "--out", str(tmp_path / "r.toml")])
    assert code == 0, err
    config = load_config(tmp_path / "r.toml")
    assert config.data.time == "visit" and config.split.by == "time" and config.data.task == "regression"
    assert config.data.drop == ["patient_id"]  # the time column is used, not dropped
    code, _, err = run_cli(["init", str(data), "--target", "outcom", "--out", str(tmp_path / "x.toml")])
    assert code == 2 and "--target 'outcom': no such column" in err and "did you mean 'outcome'?" in err
    assert not (tmp_path / "x.toml").exists()
