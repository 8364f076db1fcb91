"""The shared rules in cleanfit._util: one seed rule for every entry point, atomic writes, the rank."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import cleanfit as cf
from cleanfit._util.files import check_writable, write_json
from cleanfit._util.ranks import world
from cleanfit.errors import CleanfitError, ConfigError


@pytest.mark.parametrize("seed", [-1, 2**32, 2**40, 1.5, True])
def test_every_entry_point_refuses_the_same_bad_seeds(seed) -> None:
    calls = {
        "Batches": lambda: cf.Batches(np.arange(10), 2, seed=seed),
        "split": lambda: cf.split(10, seed=seed),
        "audit": lambda: cf.audit(np.zeros((10, 2)), seed=seed),
        "seed_everything": lambda: cf.seed_everything(seed),
    }
    for name, call in calls.items():
        with pytest.raises(CleanfitError, match=rf"{name}\(seed=.*\): the seed must be an int in \[0, 2\*\*32\)"):
            call()


def test_the_largest_seed_is_accepted_everywhere() -> None:
    seed = 2**32 - 1
    assert cf.Batches(np.arange(10), 2, seed=seed).seed == seed
    assert cf.split(10, seed=seed).seed == seed


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")
    write_json(path, {"a": 1, "nan": float("nan")})
    assert json.loads(path.read_text())["a"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_check_writable_names_the_option_and_creates_nothing(tmp_path: Path) -> None:
    check_writable(tmp_path / "new.json", "--json")
    assert not (tmp_path / "new.json").exists()
    with pytest.raises(ConfigError, match=r"--json .*does not exist"):
        check_writable(tmp_path / "missing" / "x.json", "--json")
    with pytest.raises(ConfigError, match=r"--plot .*is a directory"):
        check_writable(tmp_path, "--plot")


def test_rank_comes_from_the_environment_without_a_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert world() == (1, 2)
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert world() == (0, 1)
