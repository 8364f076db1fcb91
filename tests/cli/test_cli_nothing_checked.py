"""The audit gate never says PASSED with nothing checked, and messages point at what exists: each case
through the real ``cleanfit`` command in a subprocess (exit 2, one line naming the option or column)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


def cleanfit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cleanfit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _table(path: Path, *, only_target: bool = False, infinite_target: bool = False) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120), "y": rng.integers(0, 2, 120)})
    if infinite_target:
        frame["y"] = rng.normal(size=120)
        frame.loc[[3, 50], "y"] = [np.inf, -np.inf]
    (frame[["y"]] if only_target else frame).to_csv(path, index=False)
    return path


CASES = {
    "no held-out rows": ({}, ["--test", "0"], ["--test 0 --val 0 holds out no rows", "--test 0.2"]),
    "only the target": ({"only_target": True}, [], ["no feature columns besides --target 'y'"]),
    "infinite target": ({"infinite_target": True}, [], ["--target 'y'", "2 infinite value(s)", "rows 3, 50"]),
    "negative seed": ({}, ["--seed", "-1"], ["--seed -1: the seed must be an int in [0, 4294967296)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_audit_gate_refuses_to_pass_with_nothing_checked(tmp_path: Path, case: str) -> None:
    table_args, options, said = CASES[case]
    table = _table(tmp_path / "t.csv", **table_args)
    done = cleanfit("audit", str(table), "--target", "y", *options, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "PASSED" not in done.stdout and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cleanfit: error: ")
    for part in said:
        assert part in lines[0]


def test_a_split_column_without_held_out_rows_is_named(tmp_path: Path) -> None:
    frame = pd.read_csv(_table(tmp_path / "t.csv"))
    frame["part"] = "train"
    frame.to_csv(tmp_path / "t.csv", index=False)
    done = cleanfit("audit", "t.csv", "--target", "y", "--split-col", "part", cwd=tmp_path)
    assert done.returncode == 2 and "--split-col 'part': no row is labelled 'val' or 'test'" in done.stderr


def test_the_normal_audit_still_passes(tmp_path: Path) -> None:
    done = cleanfit("audit", str(_table(tmp_path / "t.csv")), "--target", "y", cwd=tmp_path)
    assert done.returncode == 0 and "PASSED" in done.stdout, done.stderr


def _config(tmp_path: Path, extra: str = "") -> Path:
    _table(tmp_path / "t.csv")
    config = tmp_path / "c.toml"
    config.write_text('[data]\npath = "t.csv"\ntarget = "y"\n[model]\nhidden = [4]\n[train]\nepochs = 1\n' + extra)
    return config


def test_repro_never_points_to_its_deleted_temporary_folder(tmp_path: Path) -> None:
    config = _config(tmp_path)  # a learning rate that makes the loss non-finite: the error names the checkpoints
    done = cleanfit("repro", str(config), "--set", "train.lr=1e30", "--set", "train.clip_grad=0", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert "cleanfit-repro-" not in line and "<temporary folder>/run1/checkpoints" in line
    assert "pass --out DIR to keep them" in line


def test_repro_out_keeps_both_runs_and_says_where(tmp_path: Path) -> None:
    done = cleanfit("repro", str(_config(tmp_path)), "--out", str(tmp_path / "kept"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for run in ("run1", "run2"):
        assert (tmp_path / "kept" / run / "model.pt").is_file()
    assert f"the two runs are in {tmp_path / 'kept' / 'run1'} and {tmp_path / 'kept' / 'run2'}" in done.stdout


@pytest.mark.parametrize(("where", "key"), [("file", "split.seed"), ("file", "train.seed"), ("set", "split.seed"),
                                            ("set", "train.seed")])
def test_a_bad_seed_names_its_key_and_the_file_or_the_set(tmp_path: Path, where: str, key: str) -> None:
    section, name = key.split(".")
    if where == "file":
        config = _config(tmp_path, "" if section == "train" else f"[{section}]\n")
        text = config.read_text()
        config.write_text(text.replace(f"[{section}]\n", f"[{section}]\nseed = -1\n"))
        args: list[str] = []
    else:
        config, args = _config(tmp_path), ["--set", f"{key}=-1"]
    done = cleanfit("train", str(config), *args, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert f"{key} = -1 is not valid" in line
    assert ("c.toml line" in line) if where == "file" else (f"--set {key}=-1" in line)


def test_a_parquet_folder_gets_the_same_refusals(tmp_path: Path) -> None:
    frame = pd.read_csv(_table(tmp_path / "t.csv", infinite_target=True))
    for name, part in (("inf", frame), ("only", frame[["y"]])):
        (tmp_path / name).mkdir()
        part.to_parquet(tmp_path / name / "a.parquet")  # a folder: audited by row number, out of core
    infinite = cleanfit("audit", "inf", "--target", "y", cwd=tmp_path)
    assert infinite.returncode == 2 and "--target 'y' in inf holds 2 infinite value(s)" in infinite.stderr
    only = cleanfit("audit", "only", "--target", "y", cwd=tmp_path)
    assert only.returncode == 2 and "only has no feature columns besides --target 'y'" in only.stderr
