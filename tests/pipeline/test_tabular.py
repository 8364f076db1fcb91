"""Tests for cleanfit.pipeline.run: reading and checking tables, fit-on-train preprocessing, the whole run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanfit.data.tables import infer_task
from cleanfit.pipeline.features import encode_target, feature_frame
from cleanfit.data.tables import read_table
from cleanfit.pipeline.model import MLP, build_model
from cleanfit.pipeline.config import load_config
from cleanfit.errors import ConfigError, DataError
from cleanfit.pipeline.run import AuditGateError, prepare, split_method, train_config

FAST = ["train.epochs=3", "model.hidden=[16]", "train.batch_size=32", "tracking.backend=none"]


def wine_csv(path: Path) -> Path:
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame.to_csv(path, index=False)
    return path


def config_for(csv: Path, *extra: str, target: str = "cultivar"):
    return load_config({"data": {"path": str(csv), "target": target}}, [*FAST, *extra])


# ---------------------------------------------------------------- reading and checking


def test_missing_empty_and_unreadable_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv.*file not found"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv.*the file is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"header but no data rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"bad\.parquet.*cannot read"):
        read_table(tmp_path / "bad.parquet")
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(DataError, match=r"unknown file type '\.xlsx'"):
        read_table(tmp_path / "x.xlsx")


def test_parquet_and_csv_read_the_same_table(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"], "y": [0, 1]})
    frame.to_parquet(tmp_path / "t.parquet")
    frame.to_csv(tmp_path / "t.csv", index=False)
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), read_table(tmp_path / "t.csv"))


def test_unknown_column_is_named_with_close_matches(tmp_path: Path) -> None:
    csv = wine_csv(tmp_path / "wine.csv")
    with pytest.raises(DataError, match=r"data\.target = 'cultivr': no such column in wine\.csv; did you mean 'cultivar'"):
        prepare(config_for(csv, target="cultivr"))
    with pytest.raises(DataError, match=r"data\.drop = 'alcohl'.*did you mean 'alcohol'"):
        prepare(config_for(csv, 'data.drop=["alcohl"]'))


@pytest.mark.parametrize(
    ("column", "pattern"),
    [
        ([0.0, None, 1.0, 0.0], r"1 of 4 rows have no target value"),
        ([1, 1, 1, 1], r"one class \(1\) in every row"),
    ],
)
def test_target_with_nans_or_one_class(column: list, pattern: str) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": column})
    with pytest.raises(DataError, match=pattern):
        encode_target(frame, load_config({"data": {"path": "t.csv", "target": "y"}}))


def test_task_is_inferred_and_can_be_set() -> None:
    assert infer_task(pd.Series(["a", "b", "a"])) == "classification"
    assert infer_task(pd.Series([True, False])) == "classification"
    assert infer_task(pd.Series([0.0, 1.0, 2.0, 1.0])) == "classification"  # integral floats, few values
    assert infer_task(pd.Series(np.linspace(0, 1, 50))) == "regression"
    assert infer_task(pd.Series(np.arange(500))) == "regression"  # integral, but too many values for classes
    frame = pd.DataFrame({"x": range(4), "y": [0, 1, 2, 1]})
    target = encode_target(frame, load_config({"data": {"path": "t.csv", "target": "y", "task": "regression"}}))
    assert target.task == "regression" and target.values.dtype == np.float32


def test_text_columns_need_an_encoding() -> None:
    frame = pd.DataFrame({"city": ["a", "b", None], "n": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    config = load_config({"data": {"path": "t.csv", "target": "y"}, "preprocess": {"categorical": "none"}})
    with pytest.raises(DataError, match=r"columns 'city' are not numeric and preprocess\.categorical = \"none\""):
        feature_frame(frame, config)
    features = feature_frame(frame, load_config({"data": {"path": "t.csv", "target": "y"}}))
    assert features["city"].tolist() == ["a", "b", "missing"]


# ---------------------------------------------------------------- split, audit, preprocessing


def test_split_comes_first_and_preprocessing_is_fit_on_train_only(tmp_path: Path) -> None:
    csv = wine_csv(tmp_path / "wine.csv")
    data = prepare(config_for(csv))
    assert data.task == "classification" and split_method(data.config, data.task) == "stratify"
    s = data.splits
    assert len(s.train) + len(s.val) + len(s.test) == 178
    record = data.preprocessor.cleanfit_fit_record_
    assert record["n_rows"] == len(s.train) and record["splits_fingerprint"] == s.fingerprint
    scaler = data.preprocessor.named_transformers_["numeric"][-1]
    train_mean = data.features.iloc[s.train].mean().to_numpy()
    np.testing.assert_allclose(scaler.mean_, train_mean, rtol=1e-9)
    assert not np.allclose(scaler.mean_, data.features.mean().to_numpy(), rtol=1e-6)
    X_train, y_train = data.arrays["train"]
    assert X_train.dtype == np.float32 and np.allclose(X_train.mean(axis=0), 0, atol=1e-5)
    assert data.audit.passed


def test_time_column_gives_a_time_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame({
        "day": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
        "x": rng.normal(size=n),
        "z": rng.normal(size=n),
    })
    frame["y"] = frame["x"] + frame["z"] + rng.normal(scale=0.5, size=n)
    frame.to_csv(tmp_path / "ts.csv", index=False)
    data = prepare(load_config({"data": {"path": str(tmp_path / "ts.csv"), "target": "y", "time": "day"}}, FAST))
    assert data.task == "regression" and split_method(data.config, data.task) == "time"
    assert data.splits.train.max() < data.splits.val.min() <= data.splits.val.max() < data.splits.test.min()
    assert list(data.features.columns) == ["x", "z"]  # the time column is not a feature


def test_the_gate_stops_a_leaky_table(tmp_path: Path) -> None:
    frame = pd.read_csv(wine_csv(tmp_path / "wine.csv"))
    frame["label_copy"] = frame["cultivar"] * 10
    frame.to_csv(tmp_path / "leaky.csv", index=False)
    with pytest.raises(AuditGateError, match=r"label_copy") as caught:
        prepare(config_for(tmp_path / "leaky.csv"))
    assert not caught.value.report.passed
    data = prepare(config_for(tmp_path / "leaky.csv", 'audit.fail_on="never"'))
    assert not data.audit.passed  # trained anyway, but the finding is kept for the report


# ---------------------------------------------------------------- models


def test_mlp_and_user_factory(tmp_path: Path) -> None:
    assert isinstance(MLP(3, 2, hidden=[4, 4]), torch.nn.Module)
    (tmp_path / "my_models.py").write_text(
        "import torch\ndef tiny(n_features, n_outputs):\n    return torch.nn.Linear(n_features, n_outputs)\n"
        "def broken(n_features, n_outputs):\n    return 3\n"
    )
    (tmp_path / "c.toml").write_text('[data]\npath = "d.csv"\ntarget = "y"\n[model]\nmodule = "my_models:tiny"\n')
    config = load_config(tmp_path / "c.toml")
    model = build_model(config, 5, 2, base_dir=config.base_dir)
    assert isinstance(model, torch.nn.Linear) and model.in_features == 5
    with pytest.raises(ConfigError, match=r"returned int, not a torch\.nn\.Module"):
        build_model(load_config(tmp_path / "c.toml", ["model.module=my_models:broken"]), 5, 2, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"has no callable 'tinny'; did you mean 'my_models:tiny'"):
        build_model(load_config(tmp_path / "c.toml", ["model.module=my_models:tinny"]), 5, 2, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"cannot import 'no_such_module'"):
        build_model(load_config(tmp_path / "c.toml", ["model.module=no_such_module:f"]), 5, 2, base_dir=tmp_path)


@given(hidden=st.lists(st.integers(1, 16), max_size=3), n_in=st.integers(1, 20), n_out=st.integers(1, 5))
@settings(max_examples=25, deadline=None)
def test_mlp_maps_any_width_to_the_outputs(hidden: list[int], n_in: int, n_out: int) -> None:
    assert MLP(n_in, n_out, hidden, 0.0)(torch.zeros(3, n_in)).shape == (3, n_out)


# ---------------------------------------------------------------- examples


def test_examples_validate_pass_their_audits_and_train(tmp_path: Path) -> None:
    import importlib.util
    import shutil

    examples = Path(__file__).resolve().parents[2] / "examples"
    for name in ("demo.toml", "time_split.toml", "custom_model.toml", "custom_model.py"):
        shutil.copy(examples / name, tmp_path / name)
    spec = importlib.util.spec_from_file_location("make_data", examples / "make_data.py")
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    make_data.write_energy_load(tmp_path / "data" / "energy_load.csv")
    from cleanfit.pipeline.demo import DEMO_CONFIG, write_breast_cancer

    write_breast_cancer(tmp_path / "data" / "breast_cancer.csv")
    # examples/demo.toml is the config `cleanfit demo` trains
    assert load_config(tmp_path / "demo.toml").model_dump() == load_config_text(DEMO_CONFIG, tmp_path).model_dump()

    series = prepare(load_config(tmp_path / "time_split.toml"))
    assert series.task == "regression" and split_method(series.config, series.task) == "time" and series.audit.passed
    run = train_config(tmp_path / "custom_model.toml", out=tmp_path / "out", quiet=True,
                       overrides=["train.epochs=2", "tracking.backend=none"])
    assert type(run.model).__name__ == "ResidualMLP" and run.metrics["test_accuracy"] > 0.5


def load_config_text(text: str, folder: Path):
    path = folder / "from_text.toml"
    path.write_text(text)
    return load_config(path)


def test_a_tracking_store_that_cannot_be_opened_does_not_fail_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training goes on; final metrics, tags and artifacts go to the unlogged file beside the run."""
    import json

    from cleanfit.tracking.base import TrackingWarning

    (tmp_path / "a-file").write_text("")
    store = f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}"  # a folder that is a file: the store cannot open
    config = load_config({"data": {"path": str(wine_csv(tmp_path / "wine.csv")), "target": "cultivar"}},
                         [*FAST[:-1], f'tracking.uri="{store}"'])
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.warns(TrackingWarning, match="could not open the run"):
        run = train_config(config, out=tmp_path / "out", quiet=True)  # used to raise "run None is finished"
    assert run.run_id is None and run.metrics["test_accuracy"] > 0.5
    assert run.unlogged_path is not None and run.unlogged_path.parent == (tmp_path / "out").resolve()
    records = [json.loads(line) for line in run.unlogged_path.read_text().splitlines()]
    assert {"test_accuracy", "val_loss", "train_loss"} <= {r["key"] for r in records if r["kind"] == "metric"}
    assert {"kind": "status", "value": "FINISHED"}.items() <= records[-1].items()
    assert run.to_dict()["mlflow"]["unlogged"] == str(run.unlogged_path)
    assert list((tmp_path / "cwd").iterdir()) == []  # nothing written into the working directory
