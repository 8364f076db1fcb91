"""``cleanfit train`` on a Parquet table larger than ``[audit] memory`` never reads it whole: the row split from
the target column alone, the preprocessing fit by DuckDB on the train rows, training and scoring through
block sources (pipeline/large.py). Tables of a few thousand rows with ``audit.memory = "1KB"`` take that path;
each test checks it did (``data.loading = "out-of-core"``, a frame of no rows) and compares with the in-memory
computation on the same rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cleanfit as cf
from _cli import run_cli
from cleanfit.data.rowsplit import RowSplit, split_rows
from cleanfit.pipeline.config import load_config
from cleanfit.pipeline.features import build_preprocessor, column_kinds, feature_frame
from cleanfit.pipeline.prepare import prepare

SMALL = ["train.epochs=4", "model.hidden=[8]", "train.batch_size=64", "train.lr=0.01"]


def table(n: int = 2000, seed: int = 0, regression: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(2.0, 3.0, size=n).astype("float32"),
                          "k": rng.integers(0, 5, n), "flag": rng.random(n) < 0.3,
                          "color": rng.choice(["red", "green", "blue"], n)})
    frame.loc[rng.choice(n, n // 20, replace=False), "a"] = np.nan
    frame.loc[rng.choice(n, n // 40, replace=False), "color"] = None
    signal = frame["a"].fillna(0) + (frame["color"] == "red") + rng.normal(size=n)
    frame["label"] = signal.to_numpy() * 10 + 100 if regression else np.where(signal > 0.5, "yes", "no")
    return frame


def config(path: Path, *sets: str, memory: str = "1KB") -> object:
    base = {"data": {"path": str(path), "target": "label"}, "tracking": {"backend": "none"}, "audit": {"memory": memory}}
    return load_config(base, list(sets))


def test_the_preprocessing_fit_out_of_core_is_the_column_transformers_on_the_train_rows(tmp_path: Path) -> None:
    frame = table()
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=300)
    for impute, scale, categorical in [("median", "standard", "onehot"), ("mean", "minmax", "ordinal"),
                                       ("most_frequent", "robust", "onehot"), ("median", "none", "onehot")]:
        cfg = config(tmp_path / "t.parquet", f"preprocess.impute={impute}", f"preprocess.scale={scale}",
                     f"preprocess.categorical={categorical}", "split.val=0.1")
        data = prepare(cfg, run_audit=False)
        assert data.loading == "out-of-core" and len(data.frame) == 0  # never read whole
        features = feature_frame(frame, cfg)
        fitted = build_preprocessor(*column_kinds(features), cfg.preprocess).fit(features.iloc[data.splits.train])
        for part in ("train", "val", "test"):
            rows = getattr(data.splits, part)
            X, y = data.large.source(part).take(np.arange(len(rows)))
            expected = fitted.transform(features.iloc[rows])
            assert X.dtype == np.float32 and X.shape == expected.shape
            np.testing.assert_allclose(X, expected.astype(np.float32), rtol=1e-6, atol=1e-6, err_msg=f"{impute} {scale} {part}")
            assert (np.asarray(data.classes, dtype=object)[y] == frame["label"].to_numpy()[rows]).all()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.none(), st.sampled_from([-2.5, 0.0, 1.0, 1.0, 3.25, 1e6])), min_size=40, max_size=90),
       impute=st.sampled_from(["median", "mean", "most_frequent"]), scale=st.sampled_from(["standard", "minmax", "robust"]))
def test_fitted_statistics_match_scikit_learn_with_holes_ties_and_constant_columns(tmp_path: Path, values, impute, scale) -> None:
    n = len(values)
    frame = pd.DataFrame({"x": pd.array(values, dtype="Float64").astype("float64"), "c": np.ones(n),
                          "label": np.arange(n) % 2})
    path = tmp_path / f"h{abs(hash((tuple(map(str, values)), impute, scale)))}.parquet"
    frame.to_parquet(path, row_group_size=16)
    cfg = config(path, f"preprocess.impute={impute}", f"preprocess.scale={scale}", "split.by=random", "split.test=0.3",
                 memory="0")
    data = prepare(cfg, run_audit=False)
    features = feature_frame(frame, cfg)
    fitted = build_preprocessor(*column_kinds(features), cfg.preprocess).fit(features.iloc[data.splits.train])
    X, _ = data.large.source("test").take(np.arange(data.rows("test")))
    np.testing.assert_allclose(X, fitted.transform(features.iloc[data.splits.test]).astype(np.float32), rtol=1e-6, atol=1e-6)


def test_train_out_of_core_trains_the_audited_split_and_its_folder_predicts(mlflow_tracking_uri: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    frame = table()
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=250)
    (tmp_path / "t.toml").write_text(f'[data]\npath = "t.parquet"\ntarget = "label"\n[audit]\nmemory = "1KB"\n'
                                     f'[tracking]\nuri = "{mlflow_tracking_uri}"\n')
    code, out, err = run_cli(["train", str(tmp_path / "t.toml"), "--out", str(tmp_path / "run"), "--json",
                              str(tmp_path / "run.json"), *[a for s in SMALL for a in ("--set", s)]])
    assert code == 0, out + err
    result = json.loads((tmp_path / "run.json").read_text())
    assert result["data"]["loading"] == "out-of-core"
    assert "is larger than audit.memory (1,000 bytes): audited, preprocessed and trained out of core" in out

    # the split: the audit's row split, which the in-memory rule gives for the same rows
    code, _, _ = run_cli(["audit", str(tmp_path / "t.parquet"), "--target", "label", "--val", "0.1", "--memory", "0",
                          "--json", str(tmp_path / "audit.json")])
    assert code == 0
    audited = json.loads((tmp_path / "audit.json").read_text())["split"]
    assert result["split"] == audited and audited["method"] == "row-stratify"
    part = split_rows(RowSplit("stratify", test=0.2, val=0.1), len(frame), y=frame["label"].to_numpy())
    assert cf.Splits(*(np.flatnonzero(part == p) for p in range(3))).fingerprint == audited["fingerprint"]

    # the streamed test scores are those of the saved model on the test rows, predicted in memory
    model = cf.load_run(tmp_path / "run")
    test = np.flatnonzero(part == 2)
    proba = model.predict_proba(frame.iloc[test])
    truth = frame["label"].to_numpy()[test]
    assert np.mean(model.predict(frame.iloc[test]) == truth) == pytest.approx(result["metrics"]["test_accuracy"], abs=1e-12)
    codes = np.searchsorted(model.classes_, truth)
    log_loss = -np.mean(np.log(proba[np.arange(len(test)), codes]))
    assert log_loss == pytest.approx(result["metrics"]["test_loss"], rel=1e-5)
    assert result["metrics"]["test_accuracy"] > 0.6

    # cleanfit predict on new rows, and the run in MLflow
    frame.drop(columns="label").head(50).to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_cli(["predict", str(tmp_path / "run"), str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")])
    assert code == 0, out + err
    assert len(pd.read_csv(tmp_path / "p.csv")) == 50
    client = MlflowClient(mlflow_tracking_uri)
    run = client.get_run(result["mlflow"]["run_id"])
    assert {"model.pt", "model", "report.html"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert run.data.params["data.loading"] == "out-of-core" and run.data.params["data.rows"] == str(len(frame))
    assert run.data.params["split.fingerprint"] == audited["fingerprint"]
    assert run.data.metrics["test_accuracy"] == pytest.approx(result["metrics"]["test_accuracy"])


def test_a_regression_out_of_core_scores_in_the_targets_units(tmp_path: Path) -> None:
    from cleanfit.pipeline.run import train_config

    frame = table(regression=True)
    frame.to_parquet(tmp_path / "r.parquet", row_group_size=400)
    run = train_config(config(tmp_path / "r.parquet"), out=tmp_path / "run", overrides=SMALL, quiet=True)
    assert run.loading == "out-of-core" and run.task == "regression"
    test = run.splits.test
    predicted = cf.load_run(run.out).predict(frame.iloc[test])
    rmse = float(np.sqrt(np.mean((predicted - frame["label"].to_numpy()[test]) ** 2)))
    assert rmse == pytest.approx(run.metrics["test_rmse"], rel=1e-4)


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_run(tmp_path: Path) -> None:
    """SIGKILL right after the first checkpoint (every 5 steps, mid-epoch), then ``--resume``: the block
    order, the data position and the model continue exactly."""
    import signal
    import subprocess
    import sys

    import torch

    from cleanfit.pipeline.run import train_config

    table().to_parquet(tmp_path / "t.parquet", row_group_size=250)
    (tmp_path / "t.toml").write_text('[data]\npath = "t.parquet"\ntarget = "label"\n[audit]\nmemory = "1KB"\n'
                                     '[tracking]\nbackend = "none"\n')
    sets = [*SMALL, "checkpoint.every=5", "model.dropout=0.2"]
    reference = train_config(tmp_path / "t.toml", out=tmp_path / "reference", overrides=sets, quiet=True)
    assert reference.loading == "out-of-core"
    args = ["train", "t.toml", "--out", "out", *[a for s in sets for a in ("--set", s)]]
    signal_cli = Path(__file__).parents[1] / "cli" / "_signal_cli.py"
    killed = subprocess.run([sys.executable, str(signal_cli), "SIGKILL", "1", *args], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "out" / "metrics.json").exists()
    code, out, err = run_cli([*args[:1], str(tmp_path / "t.toml"), "--out", str(tmp_path / "out"), *args[4:], "--resume",
                              "--json", str(tmp_path / "resumed.json")])
    assert code == 0, out + err
    assert "resumed from step 5 of" in err
    assert json.loads((tmp_path / "resumed.json").read_text())["metrics"] == reference.metrics
    weights = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(weights[name], tensor), name


def test_a_folder_of_files_is_one_table_out_of_core(tmp_path: Path) -> None:
    frame = table(1500, seed=3)
    (tmp_path / "parts").mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[rows].to_parquet(tmp_path / "parts" / f"{i}.parquet", row_group_size=200)
    cfg = config(tmp_path / "parts", "split.by=random")
    data = prepare(cfg, run_audit=False)
    assert data.loading == "out-of-core" and data.n_rows == len(frame)
    features = feature_frame(frame, cfg)
    fitted = build_preprocessor(*column_kinds(features), cfg.preprocess).fit(features.iloc[data.splits.train])
    X, y = data.large.source("test").take(np.arange(data.rows("test")))
    np.testing.assert_allclose(X, fitted.transform(features.iloc[data.splits.test]), rtol=1e-6, atol=1e-6)
    assert data.splits.fingerprint == cf.Splits(*(np.flatnonzero(split_rows(RowSplit("random", test=0.2, val=0.1),
                                                                            len(frame)) == p) for p in range(3))).fingerprint


def _write(tmp_path: Path, frame: pd.DataFrame, extra: str = "") -> Path:
    frame.to_parquet(tmp_path / "bad.parquet", row_group_size=500)
    path = tmp_path / "bad.toml"
    path.write_text(f'[data]\npath = "bad.parquet"\ntarget = "label"\n{extra}\n[audit]\nmemory = "1KB"\n'
                    '[tracking]\nbackend = "none"\n')
    return path


@pytest.mark.parametrize("change, extra, expected", [
    (None, 'drop = ["colour"]', "data.drop = 'colour': no such column in bad.parquet; did you mean 'color'"),
    ("when", "", "bad.parquet holds timestamp"),
    ("inf", "", "column 'b' holds infinite values"),
    ("id", "", '"ticket" (a distinct value on most rows'),
    ("holes", "", "columns 'a' have missing values and preprocess.impute = \"none\""),
    ("no-target", 'missing_target = "drop"', "rows are not dropped out of core"),
])
def test_bad_input_out_of_core_is_one_line_exit_2(tmp_path: Path, change: str | None, extra: str, expected: str) -> None:
    frame = table(1200)
    if change == "when":
        frame["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="h")
    elif change == "inf":
        frame.loc[1100, "b"] = np.inf  # in the last row group: every row is checked
    elif change == "id":
        frame["ticket"] = [f"T-{i:05d}" for i in range(len(frame))]
    elif change == "no-target":
        frame.loc[7, "label"] = None
    sets = ["--set", "preprocess.impute=none"] if change == "holes" else []
    code, out, err = run_cli(["train", str(_write(tmp_path, frame, extra)), "--out", str(tmp_path / "out"), *sets])
    assert code == 2, out + err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@settings(max_examples=40, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(-3, 3).map(float), st.floats(-1e3, 1e3)), min_size=1, max_size=300),
       qs=st.lists(st.floats(0, 1), min_size=1, max_size=3), slack=st.sampled_from([0.0, 0.001, 0.01, 0.5]))
def test_exact_quantiles_in_bounded_memory_are_numpys(values, qs, slack) -> None:
    import duckdb
    import pyarrow as pa

    from cleanfit.pipeline.large import exact_quantiles

    con = duckdb.connect()
    con.register("given", pa.table({"x": pa.array(values, type=pa.float64())}))
    con.execute("CREATE TABLE train AS SELECT * FROM given")
    present = np.array([v for v in values if v is not None])
    got = exact_quantiles(con, '"x"', qs, slack=slack)
    if len(present) == 0:
        assert got == [None] * len(qs)
    else:
        np.testing.assert_allclose(got, np.quantile(present, qs), rtol=1e-12, atol=1e-9)


def test_the_too_good_baseline_reads_its_rows_from_the_blocks(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from cleanfit.pipeline.diagnose import baseline_scores

    frame = table(1500, seed=5)
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=200)
    data = prepare(config(tmp_path / "t.parquet"), run_audit=False)
    scores = baseline_scores(data)
    X, y = data.large.source("train").take(np.arange(data.rows("train")))
    X_val, y_val = data.large.source("val").take(np.arange(data.rows("val")))
    model = LogisticRegression(max_iter=1000).fit(X, y)  # under BASELINE_ROWS: every row, as in memory
    assert scores["val_accuracy"] == pytest.approx(float(np.mean(model.predict(X_val) == y_val)))
