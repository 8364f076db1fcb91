"""``cleanfit predict``: bad inputs are one line, exit 2 and nothing written; good ones keep the row order."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from _cli import run_cli
from cleanfit.pipeline.run import train_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small, untracked regression run (a text column, an integer column)."""
    root = tmp_path_factory.mktemp("cli-predict")
    rng = np.random.default_rng(1)
    n = 150
    frame = pd.DataFrame({"size": rng.normal(size=n), "rooms": rng.integers(1, 6, size=n),
                          "town": rng.choice(["a", "b"], size=n)})
    frame["price"] = 100 + 20 * frame["size"] + 5 * frame["rooms"] + rng.normal(size=n)
    frame.to_csv(root / "houses.csv", index=False)
    run = train_config({"data": {"path": str(root / "houses.csv"), "target": "price"}}, out=root / "run", quiet=True,
                       overrides=["model.hidden=[8]", "train.epochs=15", "train.batch_size=16", "train.lr=0.01",
                                  "tracking.backend=none"])
    return run


@pytest.fixture
def run_dir(trained) -> Path:
    return trained.out


def test_predictions_go_to_stdout_or_a_file_in_the_rows_order(trained, run_dir: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(run_dir.parent / "houses.csv")
    frame.drop(columns=["price"]).iloc[::-1].to_csv(tmp_path / "new.csv", index=False)
    code, stdout, err = run_cli(["predict", str(run_dir), str(tmp_path / "new.csv")])
    assert code == 0 and err == ""
    printed = pd.read_csv(io.StringIO(stdout))
    assert list(printed.columns) == ["prediction"] and len(printed) == len(frame)
    code, _, err = run_cli(["predict", str(run_dir), str(run_dir.parent / "houses.csv"), "--out", str(tmp_path / "p.parquet")])
    assert code == 0 and "ignored 1 column(s) the model does not use: 'price'" in err and "wrote 150 predictions" in err
    forward = pd.read_parquet(tmp_path / "p.parquet")["prediction"].to_numpy()
    # the same rows in reverse order: the same predictions (to float32 rounding: a row's place in a batch can
    # change how the matrix product rounds it)
    np.testing.assert_allclose(printed["prediction"].to_numpy()[::-1], forward, rtol=1e-6)
    test = trained.splits.test  # the run's own test score, from its predictions in the target's units
    rmse = float(np.sqrt(np.mean((forward[test] - frame["price"].to_numpy()[test]) ** 2)))
    assert rmse == pytest.approx(trained.metrics["test_rmse"], rel=1e-5)
    assert rmse < frame["price"].std() / 2  # a model that learned something


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(run_dir: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(run_dir.parent / "houses.csv")
    frame.rename(columns={"rooms": "room"}).to_csv(tmp_path / "renamed.csv", index=False)
    frame.drop(columns=["town"]).to_csv(tmp_path / "missing.csv", index=False)
    frame.astype({"size": object}).assign(size=lambda f: f["size"].where(f.index != 3, "big")).to_csv(
        tmp_path / "text.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    frame.iloc[:0].to_csv(tmp_path / "header.csv", index=False)
    cases = {
        "renamed.csv": "lacks column(s) 'rooms' the model was trained on; did you mean 'room'? (rename it)",
        "missing.csv": "lacks column(s) 'town'",
        "text.csv": "column 'size' was numeric in training but holds text such as 'big' (row 4)",
        "empty.csv": "the file is empty",
        "header.csv": "header but no data rows",
    }
    for name, expected in cases.items():
        out = tmp_path / f"{name}.out.csv"
        code, stdout, err = run_cli(["predict", str(run_dir), str(tmp_path / name), "--out", str(out)])
        assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err, (name, err)
        assert stdout == "" and not out.exists(), name
    code, _, err = run_cli(["predict", str(tmp_path), str(tmp_path / "missing.csv")])
    assert code == 2 and "no model.json there; pass the --out folder of a finished `cleanfit train` run" in err
    code, _, err = run_cli(["predict", str(run_dir), str(tmp_path / "missing.csv"), "--out", str(tmp_path / "p.xlsx")])
    assert code == 2 and "name a .csv or .parquet file" in err
