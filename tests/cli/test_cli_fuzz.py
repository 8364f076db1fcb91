"""Fuzz the command line (hypothesis): odd config values and odd CSV shapes end with exit code 0, 1 (a
gate) or 2 (bad input, one line), never a traceback. In process, through ``cleanfit.cli.main.main``,
so any exception other than the exit itself fails the test with its traceback."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _cli import run_cli

_COUNTER = itertools.count()

VALUES = {
    "train.epochs": st.sampled_from(["0", "1", "-1", "1.5", "'x'"]),
    "train.batch_size": st.sampled_from(["0", "1", "7", "-3", "1e9"]),
    "train.lr": st.sampled_from(["0", "1e-3", "-1", "inf", "nan", "'fast'"]),
    "model.hidden": st.sampled_from(["[]", "[0]", "[3]", "[-2]", "[3, 'a']", "3"]),
    "model.dropout": st.sampled_from(["0", "0.5", "1", "-0.1", "2"]),
    "split.test": st.sampled_from(["0", "0.2", "0.99", "1", "1.5", "-0.1"]),
    "split.val": st.sampled_from(["0", "0.1", "0.9"]),
    "split.by": st.sampled_from(["'random'", "'stratify'", "'time'", "'group'", "'nope'"]),
    "train.seed": st.sampled_from(["0", "-1", "4294967296", "'a'"]),
    "train.precision": st.sampled_from(["'fp32'", "'fp8'", "'auto'"]),
}


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.sampled_from([1, 2, 5, 40]))
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    frame = pd.DataFrame({"y": draw(st.sampled_from([
        rng.integers(0, 2, rows), rng.normal(size=rows), np.zeros(rows), np.array(["a", "b"] * rows)[:rows],
        np.where(rng.random(rows) < 0.3, np.nan, 1.0),
    ]))})
    for i, kind in enumerate(draw(st.lists(st.sampled_from(["num", "text", "const", "nan", "inf", "date"]), max_size=3))):
        frame[f"c{i}"] = {
            "num": rng.normal(size=rows), "text": rng.choice(["u", "v", "w"], rows), "const": np.ones(rows),
            "nan": np.full(rows, np.nan), "inf": np.where(rng.random(rows) < 0.5, np.inf, 1.0),
            "date": pd.date_range("2024-01-01", periods=rows).astype(str),
        }[kind]
    return frame


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=tables(), sets=st.dictionaries(st.sampled_from(sorted(VALUES)), st.none(), max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: VALUES[k] for k in keys})))
def test_odd_configs_and_tables_end_in_0_1_or_2_never_a_traceback(tmp_path: Path, frame: pd.DataFrame,
                                                                   sets: dict[str, str]) -> None:
    folder = tmp_path / f"case{next(_COUNTER)}"
    folder.mkdir()
    frame.to_csv(folder / "t.csv", index=False)
    (folder / "c.toml").write_text('[data]\npath = "t.csv"\ntarget = "y"\n')
    args = ["train", str(folder / "c.toml"), "--out", str(folder / "out"), "--set", "tracking.backend=none",
            "--set", "train.epochs=1", *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")]]
    code, _, err = run_cli(args)
    assert code in (0, 1, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert err.strip().splitlines()[-1].startswith("cleanfit: error: ")
