"""Tests for cleanfit.pipeline.config: defaults, overrides, and errors that name the file, key, line and fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanfit.pipeline.config import Config, load_config, parse_override
from cleanfit.errors import ConfigError

MINIMAL = {"data": {"path": "d.csv", "target": "y"}}


def write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_the_documented_ones() -> None:
    c = load_config(MINIMAL)
    assert (c.data.time, c.data.group, c.data.drop, c.data.task) == (None, None, [], "auto")
    assert (c.split.by, c.split.test, c.split.val, c.split.gap, c.split.seed) == ("auto", 0.2, 0.1, 0, 0)
    assert (c.preprocess.impute, c.preprocess.scale, c.preprocess.categorical) == ("median", "standard", "onehot")
    assert (c.model.kind, c.model.hidden, c.model.dropout, c.model.module) == ("mlp", [128, 64], 0.1, None)
    t = c.train
    assert (t.epochs, t.batch_size, t.accumulate, t.optimizer, t.lr, t.weight_decay) == (20, 64, 1, "adamw", 1e-3, 0.01)
    assert (t.schedule, t.warmup, t.precision, t.clip_grad, t.seed, t.early_stopping) == (
        "warmup_cosine", 0.05, "auto", 1.0, 0, 0,
    )
    assert (c.checkpoint.dir, c.checkpoint.every, c.checkpoint.keep_last) == (None, 0, 3)
    assert (c.tracking.backend, c.tracking.experiment, c.tracking.uri) == ("mlflow", "d", None)
    assert c.audit.fail_on == "critical"


def test_relative_data_path_resolves_against_the_config_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "configs"
    sub.mkdir()
    path = write(sub, '[data]\npath = "../data/x.csv"\ntarget = "y"\n')
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    c = load_config(path)
    assert Path(c.data.path) == (tmp_path / "data" / "x.csv").resolve()
    assert c.base_dir == sub.resolve()
    assert c.tracking.experiment == "x"


def test_set_overrides_any_field_with_toml_values(tmp_path: Path) -> None:
    path = write(tmp_path, '[data]\npath = "d.csv"\ntarget = "y"\n[train]\nlr = 0.1\n')
    c = load_config(path, ["train.lr=3e-4", "model.hidden=[8, 4]", "data.target=price", "tracking.backend=none"])
    assert (c.train.lr, c.model.hidden, c.data.target, c.tracking.backend) == (3e-4, [8, 4], "price", "none")


@pytest.mark.parametrize(
    ("text", "overrides", "pattern"),
    [
        ('[data]\npath = "d.csv"\ntarget = "y"\n\n[train]\nbatchsize = 8\n', [], r"run\.toml line 6: unknown key 'train\.batchsize'; did you mean 'batch_size'\?"),
        ('[data]\npath = "d.csv"\ntarget = "y"\n[trian]\nlr = 1\n', [], r"run\.toml line 4: unknown section \[trian\]; did you mean 'train'\?"),
        ('[data]\npath = "d.csv"\ntarget = "y"\n[train]\nepochs = 2\nlr = "fast"\n', [], r"run\.toml line 6: train\.lr = 'fast' is not valid: expected a valid number; e\.g\. lr = 0\.001"),
        ('[data]\npath = "d.csv"\ntarget = "y"\n[train]\noptimizer = "adamm"\n', [], r"line 5: train\.optimizer = 'adamm' .*did you mean 'adam'\?"),
        ('[data]\npath = "d.csv"\n', [], r"run\.toml line 1: missing required key 'data\.target'"),
        ('[data]\npath = "d.csv"\ntarget = "y"\n', ["train.epochs=many"], r"--set train\.epochs=many: train\.epochs = 'many'"),
        ('[data]\npath = "d.csv"\ntarget = "y"\n', ["model.hidden=[16, 0]"], r"model\.hidden\[1\] = 0 is not valid"),
        ('[data]\npath = "d.csv"\ntarget = "y"\n', ["model.module=nocolon"], r'expected "package\.module:factory"'),
        ('[data]\npath = "d.csv"\ntarget = "y"\n', ["split.test=0.6", "split.val=0.5"], r"run\.toml with --set split\.test=0\.6, --set split\.val=0\.5: split\.test \+ split\.val must leave rows"),
        ('[data]\npath = "d.csv"\ntarget = "y"\n', ["split.test=0.95"], r"run\.toml with --set split\.test=0\.95: split\.test \+ split\.val must leave rows"),
        ('[data]\npath = "d.csv"\ntarget = "y"\n[split]\nby = "time"\n', [], r'split\.by = "time" needs data\.time'),
        ('[data]\npath = "d.csv"\ntarget = "y"\n', ["train.lr"], r"expected section\.key=value"),
        ("[data\npath = 1\n", [], r"run\.toml: not valid TOML"),
        ('[data]\npath = "d.csv"\ntarget = "y"\n', ["train.early_stopping=3", "split.val=0"], r"early_stopping needs validation rows"),
    ],
)
def test_mistakes_name_file_line_key_and_fix(tmp_path: Path, text: str, overrides: list[str], pattern: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern):
        load_config(path, overrides)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found"):
        load_config(tmp_path / "nope.toml")


def test_strict_types_reject_a_string_for_a_number_and_a_float_for_an_int() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs = 2\.5"):
        load_config({**MINIMAL, "train": {"epochs": 2.5}})
    with pytest.raises(ConfigError, match=r"train\.batch_size = '8'"):
        load_config({**MINIMAL, "train": {"batch_size": "8"}})


def test_identity_ignores_where_a_run_is_written_and_tracked() -> None:
    a = load_config(MINIMAL)
    b = load_config({**MINIMAL, "tracking": {"backend": "none", "uri": "sqlite:///x.db"}, "checkpoint": {"dir": "/tmp/c"}})
    c = load_config({**MINIMAL, "train": {"seed": 1}})
    assert a.identity() == b.identity() != c.identity()


@given(
    lr=st.floats(min_value=1e-8, max_value=10, allow_nan=False),
    epochs=st.integers(min_value=1, max_value=10_000),
    hidden=st.lists(st.integers(min_value=1, max_value=4096), max_size=4),
)
@settings(max_examples=40, deadline=None)
def test_overrides_round_trip_any_valid_value(lr: float, epochs: int, hidden: list[int]) -> None:
    c = load_config(MINIMAL, [f"train.lr={lr!r}", f"train.epochs={epochs}", f"model.hidden={hidden}"])
    assert (c.train.lr, c.train.epochs, c.model.hidden) == (lr, epochs, hidden)


@given(text=st.text(max_size=60))
@settings(max_examples=150, deadline=None)
def test_any_toml_text_is_a_config_or_a_config_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "c.toml"
    try:
        path.write_text(text, encoding="utf-8")
    except UnicodeEncodeError:
        return
    try:
        assert isinstance(load_config(path), Config)
    except ConfigError as exc:
        assert str(path) in str(exc)


@given(key=st.text(min_size=1, max_size=20), value=st.text(max_size=20))
@settings(max_examples=100, deadline=None)
def test_any_override_is_applied_or_a_config_error(key: str, value: str) -> None:
    try:
        load_config(MINIMAL, [f"{key}={value}"])
    except ConfigError as exc:
        assert re.search(r"--set|config", str(exc))


def test_parse_override_reads_toml_then_text() -> None:
    assert parse_override("split.by=group") == (("split", "by"), "group")
    assert parse_override('data.drop=["a", "b"]') == (("data", "drop"), ["a", "b"])
    assert parse_override("train.seed = 7") == (("train", "seed"), 7)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "+inf"])
def test_infinite_or_nan_numbers_are_config_mistakes(tmp_path: Path, value: str) -> None:
    # TOML has inf and nan; ``lr = inf`` used to reach the Trainer and crash with a traceback.
    path = write(tmp_path, f'[data]\npath = "d.csv"\ntarget = "y"\n[train]\nepochs = 2\nlr = {value}\n')
    with pytest.raises(ConfigError, match=r"run\.toml line 6: train\.lr = .*finite"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"--set train\.warmup="):
        load_config(MINIMAL, [f"train.warmup={value}"])


def test_a_dotted_key_inside_the_wrong_section_names_its_own_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[data]\npath = "d.csv"\ntarget = "y"\ntrain.lr = 0.1\n')
    with pytest.raises(ConfigError, match=r"run\.toml line 4: unknown key 'data\.train'"):
        load_config(path)


def test_a_config_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes('\ufeff[data]\npath = "d.csv"\ntarget = "y"\n'.encode())  # as Windows Notepad saves it
    assert load_config(path).data.target == "y"
