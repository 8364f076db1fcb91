"""``cleanfit audit``: through click's CliRunner for speed, and a real subprocess for the exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from _cli import run_cli
from cleanfit.cli.main import cli


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    df["label"] = (df["a"] + rng.normal(size=n) > 0).astype(int)
    df["part"] = np.where(rng.random(n) < 0.2, "test", "train")
    df["day"] = np.arange(n)
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    return path


def test_clean_split_column_passes(table: Path, tmp_path: Path):
    out_json = tmp_path / "audit.json"
    out_html = tmp_path / "audit.html"
    result = CliRunner().invoke(cli, ["audit", str(table), "--target", "label", "--split-col", "part",
                                      "--json", str(out_json), "--html", str(out_html)])
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output
    payload = json.loads(out_json.read_text())
    assert payload["passed"] is True and payload["gate_failed"] is False and payload["target"] == "label"
    assert out_html.read_text().startswith("<!doctype html>")


def test_a_leak_fails_the_gate_with_exit_1(table: Path, tmp_path: Path):
    df = pd.read_csv(table)
    df["leak"] = df["label"] * 10
    leaky = tmp_path / "leaky.parquet"
    df.to_parquet(leaky)
    code, out, _ = run_cli(["audit", str(leaky), "--target", "label", "--split-col", "part"])
    assert code == 1 and "'leak'" in out and "critical" in out
    code, _, _ = run_cli(["audit", str(leaky), "--target", "label", "--split-col", "part", "--fail-on", "never"])
    assert code == 0


def test_warning_gate(table: Path, tmp_path: Path):
    df = pd.read_csv(table).sort_values("label")  # blocked by label: a warning, not critical
    path = tmp_path / "sorted.csv"
    df.to_csv(path, index=False)
    assert run_cli(["audit", str(path), "--target", "label", "--split-col", "part"])[0] == 0
    code, out, _ = run_cli(["audit", str(path), "--target", "label", "--split-col", "part", "--fail-on", "warning"])
    assert code == 1 and "label-order" in out


def test_the_command_makes_a_time_split(table: Path):
    code, out, _ = run_cli(["audit", str(table), "--target", "label", "--time", "day", "--test", "0.2", "--val", "0.1"])
    assert code == 0, out
    assert "temporal" not in out.split("skipped")[-1]
    code, out, _ = run_cli(["audit", str(table), "--target", "label", "--time", "day", "--by", "random"])
    assert code == 1 and "temporal" in out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--target", "lable"], "did you mean 'label'"),
        (["--target", "label", "--time", "dya"], "--time 'dya'"),
        (["--target", "label", "--checks", "duplicate"], "unknown check 'duplicate'"),
        (["--target", "label", "--split-col", "a"], "not one of 'train', 'val', 'test'"),
        (["--target", "label", "--by", "group"], "--by group needs --group COLUMN"),
        (["--target", "label", "--time", "part"], "--time 'part' holds"),
        (["--target", "label", "--by", "time"], "--by time needs --time COLUMN"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(table: Path, args: list[str], needle: str):
    code, out, err = run_cli(["audit", str(table), *args])
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_files(tmp_path: Path, table: Path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,label\n")
    one_class = tmp_path / "one.csv"
    pd.DataFrame({"a": [1, 2, 3], "label": [1, 1, 1]}).to_csv(one_class, index=False)
    binary = tmp_path / "bad.parquet"
    binary.write_bytes(b"not parquet at all")
    for path, needle in [(tmp_path / "missing.csv", "file not found"), (empty, "the file is empty"),
                         (header_only, "no data rows"), (one_class, "single value"),
                         (binary, "cannot read"), (table.with_suffix(".xlsx"), "file not found")]:
        code, _, err = run_cli(["audit", str(path), "--target", "label"])
        assert code == 2 and needle in err, (path, err)
        assert path.name in err and len(err.strip().splitlines()) == 1


def test_real_subprocess_exit_codes(table: Path, tmp_path: Path):
    exe = Path(sys.executable).with_name("cleanfit")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cleanfit"]
    ok = subprocess.run([*cmd, "audit", str(table), "--target", "label", "--split-col", "part"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "Leakage audit" in ok.stdout
    bad = subprocess.run([*cmd, "audit", str(tmp_path / "nope.csv"), "--target", "label"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("cleanfit: error:") and "Traceback" not in bad.stderr


def test_a_tiny_table_is_audited_without_a_traceback(tmp_path):
    """Too few train rows to cross-validate a single feature: no crash, no made-up finding."""
    path = tmp_path / "tiny.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n9,1,0\n2,2,1\n")
    code, out, err = run_cli(["audit", str(path), "--target", "y", "--by", "random"])
    assert code in (0, 1), err
    assert "Traceback" not in out + err and "target-leakage" not in out


@pytest.mark.parametrize("option", ["--group", "--time", "--split-col"])
def test_a_column_given_as_both_target_and_another_role_is_named(table: Path, option: str):
    code, _, err = run_cli(["audit", str(table), "--target", "label", option, "label"])
    assert code == 2 and f"{option} 'label' is also the --target column" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--json", "--html"])
def test_output_files_go_into_new_folders_and_an_unwritable_path_is_exit_2(table: Path, tmp_path: Path, option: str):
    nested = tmp_path / "reports" / "today" / "audit.out"
    code, _, err = run_cli(["audit", str(table), "--target", "label", "--split-col", "part", option, str(nested)])
    assert code == 0 and nested.stat().st_size > 0, err
    blocked = table / "audit.out"  # the "folder" is a file
    code, _, err = run_cli(["audit", str(table), "--target", "label", "--split-col", "part", option, str(blocked)])
    assert code == 2 and f"{option} " in err and "cannot write" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_integer_regression_target_gets_a_random_split_by_default(tmp_path: Path):
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    df["price"] = (100_000 + 20_000 * df["a"] + 5_000 * rng.normal(size=n)).astype(int)  # ~all distinct
    path = tmp_path / "prices.csv"
    df.to_csv(path, index=False)
    code, out, err = run_cli(["audit", str(path), "--target", "price"])
    assert code == 0 and "PASSED" in out, err


def test_impact_measures_a_leak_in_the_text_and_json(table: Path, tmp_path: Path):
    df = pd.read_csv(table)
    df["leak"] = df["label"] * 3 + 1  # the label, re-coded
    leaky = tmp_path / "leaky.csv"
    df.to_csv(leaky, index=False)
    out_json = tmp_path / "audit.json"
    code, out, _ = run_cli(["audit", str(leaky), "--target", "label", "--split-col", "part", "--impact", "--json", str(out_json),
                      "--fail-on", "never"])
    assert code == 0 and "Impact: accuracy" in out
    (leak,) = [f for f in json.loads(out_json.read_text())["findings"] if f["details"].get("column") == "leak"]
    impact = leak["details"]["impact"]
    assert impact["with"] > impact["without"] and impact["interval"][0] > 0
    _, plain, _ = run_cli(["audit", str(leaky), "--target", "label", "--split-col", "part"])
    assert "Impact" not in plain


def test_dates_and_names_stored_as_text_are_named(table: Path, tmp_path: Path):
    df = pd.read_csv(table)
    df["date"] = pd.date_range("2015-01-01", periods=len(df)).strftime("%Y-%m-%d")
    df["Name"] = [f"row {i}" for i in np.random.default_rng(0).permutation(len(df))]
    path = tmp_path / "text.csv"
    df.to_csv(path, index=False)
    code, out, _ = run_cli(["audit", str(path), "--target", "label", "--split-col", "part"])
    assert code == 0 and "No leakage found" not in out
    assert "Column 'date' holds dates" in out and "Column 'Name' is text" in out
