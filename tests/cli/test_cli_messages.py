"""Messages phrased for where the user is: the CLI names its options and config keys, quotes the bad
value and its row, and says what the file looks like (in process, through ``cleanfit.cli.main.main``)."""

from __future__ import annotations

from pathlib import Path

from _cli import run_cli
from cleanfit.pipeline.demo import write_breast_cancer
from cleanfit.training.checkpoints import CheckpointManager


def test_a_config_without_data_shows_the_smallest_useful_section(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[train]\nepochs = 2\n")
    code, _, err = run_cli(["train", str(tmp_path / "c.toml")])
    assert code == 2 and "missing the [data] section" in err and '[data] path = "table.csv"' in err
    assert "data = ..." not in err


def test_a_semicolon_separated_file_gets_a_delimiter_hint(tmp_path: Path) -> None:
    (tmp_path / "semi.csv").write_text("a;b;y\n1;2;0\n3;4;1\n")
    code, _, err = run_cli(["audit", str(tmp_path / "semi.csv"), "--target", "y"])
    assert code == 2 and "separated by semicolons, not commas" in err and len(err.strip().splitlines()) == 1


def test_a_bad_date_is_quoted_with_its_row(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("t,a,y\n2024-01-01,1,0\n2024-01-02,2,1\n2024-01-0x,3,0\n2024-01-04,4,1\n")
    code, _, err = run_cli(["audit", str(tmp_path / "d.csv"), "--target", "y", "--time", "t"])
    assert code == 2 and "'2024-01-0x' on data row 3" in err
    assert "'2024-01-01'" not in err  # not a valid value quoted as the bad one


def test_a_skipped_checkpoint_is_one_line_and_advice_names_cli_options(tmp_path: Path) -> None:
    write_breast_cancer(tmp_path / "cancer.csv")
    (tmp_path / "c.toml").write_text('[data]\npath = "cancer.csv"\ntarget = "diagnosis"\n')
    args = ["train", str(tmp_path / "c.toml"), "--out", str(tmp_path / "out"), "--set", "model.hidden=[4]",
            "--set", "train.epochs=2", "--set", "tracking.backend=none", "--set", "checkpoint.every=3"]
    code, _, err = run_cli([*args, "--resume"])  # nothing to resume yet: it says so, and starts
    assert code == 0 and "resume: no finished checkpoint in" in err and "starts from the beginning" in err
    newest = CheckpointManager(tmp_path / "out" / "checkpoints").list()[0]
    newest.write_bytes(newest.read_bytes()[:-1])  # a torn newest checkpoint
    code, _, err = run_cli([*args, "--resume"])
    assert code == 0, err
    warning = [line for line in err.splitlines() if "skipped 1 invalid checkpoint" in line]
    assert len(warning) == 1 and warning[0].startswith("cleanfit: warning: ")
    assert "warnings.warn(" not in err  # no Python source line

    for checkpoint in CheckpointManager(tmp_path / "out" / "checkpoints").list():
        checkpoint.write_bytes(checkpoint.read_bytes()[:-1])
    code, _, err = run_cli([*args, "--resume"])
    assert code == 2 and "--resume but none of the" in err and "resume=True" not in err
