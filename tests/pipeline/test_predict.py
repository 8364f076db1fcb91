"""A trained run's folder is a model: saved preprocessing, load_run, MLflow pyfunc, serving.

One tracked classification run (numeric columns with holes, a text column, string labels) is trained
once for the module, in its own MLflow SQLite store; each test reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cleanfit as cf
from cleanfit.errors import DataError
from cleanfit.pipeline.config import PreprocessConfig
from cleanfit.pipeline.features import build_preprocessor, feature_frame
from cleanfit.pipeline.run import train_config
from cleanfit.pipeline.saved import Preprocessing, preprocess_spec

SRC = Path(cf.__file__).resolve().parents[1]
SMALL = ["model.hidden=[16]", "model.dropout=0.0", "train.epochs=4", "train.batch_size=32", "train.lr=0.01"]


def table(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    score = x1 - 0.5 * x2 + (color == "red") + rng.normal(scale=0.5, size=n)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "count": rng.integers(0, 9, size=n), "color": color,
                          "label": np.where(score > 0.3, "yes", "no")})
    frame.loc[rng.choice(n, 20, replace=False), "x2"] = np.nan
    return frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory, _mlflow_template_db):
    """(root, run, tracking uri): the run trained with ``cleanfit train``'s code into ``root/run``."""
    root = tmp_path_factory.mktemp("predict")
    table().to_csv(root / "t.csv", index=False)
    shutil.copyfile(_mlflow_template_db, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:  # new experiments put their artifacts under ./mlruns
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        run = train_config({"data": {"path": str(root / "t.csv"), "target": "label"}}, out=root / "run",
                           overrides=SMALL, quiet=True)
    return root, run, uri


def test_the_folder_holds_a_model_that_reproduces_the_runs_own_test_scores(trained) -> None:
    from sklearn.metrics import roc_auc_score

    root, run, _ = trained
    model = cf.load_run(run.out)
    frame = pd.read_csv(root / "t.csv")
    test = run.splits.test
    labels = model.predict(frame)
    assert model.classes_ == ["no", "yes"] and set(labels) <= {"no", "yes"}
    assert model.ignored_ == ["label"]
    assert np.mean(labels[test] == frame["label"].to_numpy()[test]) == pytest.approx(run.metrics["test_accuracy"], abs=1e-12)
    proba = model.predict_proba(frame)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(frame["label"].to_numpy()[test] == "yes", proba[test, 1]) == pytest.approx(run.metrics["test_auc"], abs=1e-9)
    spec = json.loads((run.out / "model.json").read_text())
    assert [f["name"] for f in spec["features"]] == ["x1", "x2", "count", "color"]
    color = spec["features"][3]
    assert color["kind"] == "text" and color["dtype"] in ("object", "str") and color["categories"] == ["blue", "green", "red"]
    assert spec["features"][2]["dtype"] == "int64"


def test_cli_load_run_and_mlflow_pyfunc_agree_exactly(trained, tmp_path) -> None:
    import mlflow.pyfunc

    root, run, uri = trained
    out = tmp_path / "p.csv"
    done = subprocess.run([sys.executable, "-m", "cleanfit", "predict", str(run.out), str(root / "t.csv"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.returncode == 0, done.stderr
    assert "ignored 1 column(s) the model does not use: 'label'" in done.stderr
    from_cli = pd.read_csv(out)
    frame = pd.read_csv(root / "t.csv")
    from_python = cf.load_run(run.out).predictions(frame)
    assert list(from_cli.columns) == ["prediction", "proba_no", "proba_yes"]
    pd.testing.assert_frame_equal(from_cli, from_python, check_exact=True)
    mlflow.set_tracking_uri(uri)
    from_mlflow = mlflow.pyfunc.load_model(f"runs:/{run.run_id}/model").predict(frame.drop(columns=["label"]))
    pd.testing.assert_frame_equal(from_mlflow, from_python, check_exact=True)


def test_a_parquet_table_in_and_out_keeps_the_row_order(trained, tmp_path) -> None:
    from cleanfit.pipeline.predict import predict_file

    root, run, _ = trained
    frame = pd.read_csv(root / "t.csv").iloc[::-1].reset_index(drop=True)
    frame.to_parquet(tmp_path / "rev.parquet")
    table_out, ignored = predict_file(run.out, tmp_path / "rev.parquet", tmp_path / "p.parquet")
    written = pd.read_parquet(tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(written, table_out)
    forward = cf.load_run(run.out).predictions(pd.read_csv(root / "t.csv"))
    pd.testing.assert_frame_equal(written.iloc[::-1].reset_index(drop=True), forward)


def test_new_rows_are_checked_by_name_and_type(trained) -> None:
    root, run, _ = trained
    model = cf.load_run(run.out)
    frame = pd.read_csv(root / "t.csv")
    with pytest.raises(DataError, match=r"lacks column\(s\) 'x1'.*did you mean 'x_1'\? \(rename it\)"):
        model.predict(frame.rename(columns={"x1": "x_1"}))
    with pytest.raises(DataError, match=r"lacks column\(s\) 'count', 'color'"):
        model.predict(frame.drop(columns=["count", "color"]))
    drifted = frame.astype({"x1": object})
    drifted.loc[7, "x1"] = "n/a"
    with pytest.raises(DataError, match=r"column 'x1' was numeric in training but holds text such as 'n/a' \(row 8\)"):
        model.predict(drifted)
    with pytest.raises(DataError, match="no rows to predict"):
        model.predict(frame.iloc[:0])
    numbers_as_text = frame.astype({"x1": str})  # numbers written as text still read as numbers
    assert (model.predict(numbers_as_text) == model.predict(frame)).all()
    unseen = frame.assign(color="purple")  # a category never seen in training: one-hot all zeros, as in training
    encoded = model.transform(unseen)
    assert np.array_equal(encoded[:, 3:], np.zeros((len(frame), 3)))
    assert len(model.predict(unseen)) == len(frame)


def test_the_served_model_answers_a_post_on_localhost(trained) -> None:
    root, run, uri = trained
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bin_dir = Path(sys.executable).parent  # mlflow starts `uvicorn` from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(SRC), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    mlflow_cli = bin_dir / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "--env-manager", "local", "-m", f"runs:/{run.run_id}/model",
         "-h", "127.0.0.1", "-p", str(port), "--workers", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=root, start_new_session=True,
    )
    try:
        _wait_until_up(server, f"http://127.0.0.1:{port}/ping", deadline=time.monotonic() + 120)
        frame = pd.read_csv(root / "t.csv").dropna().head(12).drop(columns=["label"])
        body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = pd.DataFrame(json.loads(response.read())["predictions"])
    finally:
        _stop(server)
    expected = cf.load_run(run.out).predictions(frame).reset_index(drop=True)
    pd.testing.assert_frame_equal(answer, expected, check_exact=True)


def _stop(server: subprocess.Popen) -> None:
    """Terminate the server's process group (mlflow runs uvicorn under a shell), then kill what is left."""
    for signal_number in (15, 9):
        try:
            os.killpg(server.pid, signal_number)
        except ProcessLookupError:
            pass
        try:
            server.wait(timeout=20)
            break
        except subprocess.TimeoutExpired:
            continue
    if server.stderr is not None:
        server.stderr.close()


def _wait_until_up(server: subprocess.Popen, url: str, deadline: float) -> None:
    """Poll ``url`` until it answers 200, the server exits, or the deadline passes (each wait is on the process)."""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        try:
            server.wait(timeout=0.5)  # returns only if the server died
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"mlflow models serve exited with {server.returncode}: {server.stderr.read()[-3000:]}")
    raise AssertionError(f"mlflow models serve did not answer {url} in time")


# ---------------------------------------------------------------- the saved preprocessing is scikit-learn's


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    impute=st.sampled_from(["median", "mean", "most_frequent"]),
    scale=st.sampled_from(["standard", "minmax", "robust", "none"]),
    categorical=st.sampled_from(["onehot", "ordinal"]),
)
def test_the_json_preprocessing_gives_scikit_learns_outputs_bit_for_bit(seed, impute, scale, categorical) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    frame = pd.DataFrame({"a": rng.normal(size=n) * 100, "b": rng.integers(0, 5, size=n).astype(float),
                          "c": rng.choice(["p", "q", None], size=n), "empty": np.nan, "y": 0})
    frame.loc[rng.random(n) < 0.2, "a"] = np.nan
    config = cf_config(impute, scale, categorical)
    features = feature_frame(frame, config)
    fitted = build_preprocessor(["a", "b", "empty"], ["c"], config.preprocess).fit(features.iloc[:30])
    new = features.iloc[25:].copy()
    new.loc[new.index[0], "c"] = "never seen"
    spec = json.loads(json.dumps(preprocess_spec(fitted)))  # through JSON text, as it is stored
    rebuilt = Preprocessing(spec)
    assert rebuilt.n_outputs == fitted.transform(new).shape[1]
    assert np.array_equal(rebuilt.transform(new), fitted.transform(new), equal_nan=True)


def cf_config(impute: str, scale: str, categorical: str):
    from cleanfit.pipeline.config import load_config

    return load_config({"data": {"path": "t.csv", "target": "y"},
                        "preprocess": PreprocessConfig(impute=impute, scale=scale, categorical=categorical).model_dump()})
