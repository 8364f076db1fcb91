"""CheckpointManager: atomic writes, checksums, retention, resolve(), safe loading, write failures."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanfit.errors import CheckpointError, ConfigError
from cleanfit.training import checkpoint_file
from cleanfit.training.checkpoints import CheckpointManager, CheckpointWarning
from cleanfit.training.state import check_compatible

CHILD = Path(__file__).with_name("_checkpoint_child.py")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def make_state(step: int = 0) -> dict:
    """A state shaped like TrainState.state_dict(): tensors, plain values and containers."""
    return {
        "model": OrderedDict(w=torch.full((3, 2), float(step)), b=torch.zeros(2, dtype=torch.bfloat16)),
        "optimizer": {"state": {0: {"step": torch.tensor(5.0)}}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.99)}]},
        "rng": {"python": (3, tuple(range(5)), None), "torch": torch.ByteTensor([1, 2, 3])},
        "step": step,
        "epoch": 1,
        "run_id": None,
        "flags": {"nested": [True, 1.5, "x", b"raw", {1, 2}]},
        "dtype": torch.float32,
    }


def assert_state_equal(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_state_equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_state_equal(x, y)
    else:
        assert a == b


@pytest.fixture(scope="module")
def valid_bytes(tmp_path_factory) -> bytes:
    manager = CheckpointManager(tmp_path_factory.mktemp("valid"))
    return manager.save(make_state(7), step=7, epoch=1, metric=0.25).read_bytes()


# -- round trip and atomic replace ------------------------------------------------------------


def test_round_trip_keeps_every_value_and_type(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")
    manager.check_writable()
    path = manager.save(make_state(3), step=3, epoch=1, metric=0.5)
    assert path == tmp_path / "ckpt" / "step-0000000003.ckpt"
    assert_state_equal(manager.load(path), make_state(3))


def test_saving_the_same_step_replaces_the_file_and_leaves_no_temp_files(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.save(make_state(1), step=5, epoch=0, metric=None)
    path = manager.save(make_state(2), step=5, epoch=0, metric=None)
    assert_state_equal(manager.load(path), make_state(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000000005.ckpt"]


@pytest.mark.parametrize("fsync_call", [1, 2, 3])
def test_a_process_killed_during_a_save_leaves_a_valid_checkpoint(tmp_path, fsync_call):
    """SIGKILL at the temp file's fsync (before the rename), the directory's fsync (after) or best.json's."""
    proc = subprocess.run(
        [sys.executable, str(CHILD), "kill-fsync", str(tmp_path), str(fsync_call)], capture_output=True, text=True
    )
    assert proc.returncode == -9, proc.stderr
    manager = CheckpointManager(tmp_path)
    state = manager.resolve(True)
    if fsync_call == 1:  # killed before the rename: the old checkpoint is the newest, the temp file is ignored
        assert state["step"] == 1 and manager.resolved_path.name == "step-0000000001.ckpt"
        assert [p.name for p in tmp_path.glob(".step-*.tmp")] != []
    else:  # killed after the rename: the new checkpoint is complete
        assert state["step"] == 2 and torch.equal(state["w"], torch.ones(256 * 1024))
    assert manager.load(tmp_path / "step-0000000001.ckpt")["step"] == 1
    manager.check_writable()  # the dead writer's temp files are cleaned up before training starts
    assert list(tmp_path.glob(".*.tmp")) == []


def test_temp_files_of_a_live_writer_are_kept_and_of_a_dead_one_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_temp = tmp_path / f".step-0000000009.ckpt.{int(dead.stdout)}.tmp"
    live_temp = tmp_path / f".step-0000000009.ckpt.{os.getppid()}.tmp"
    for temp in (dead_temp, live_temp):
        temp.write_bytes(b"partial")
    manager = CheckpointManager(tmp_path)
    assert manager.list() == [] and manager.resolve(True) is None  # temp files are never checkpoints
    manager.save(make_state(), step=1, epoch=0, metric=None)
    assert not dead_temp.exists() and live_temp.exists()


# -- checksum: truncation and corruption are always detected ----------------------------------


def test_truncation_at_every_byte_offset_is_detected(tmp_path, valid_bytes):
    for size in range(len(valid_bytes)):
        with pytest.raises(CheckpointError, match="truncated|not a cleanfit checkpoint"):
            checkpoint_file.verify(valid_bytes[:size], tmp_path / "x.ckpt")
    checkpoint_file.verify(valid_bytes, tmp_path / "x.ckpt")


@SETTINGS
@given(data=st.data())
def test_a_truncated_checkpoint_is_always_refused(tmp_path, valid_bytes, data):
    size = data.draw(st.integers(0, len(valid_bytes) - 1), label="size")
    path = tmp_path / "step-0000000007.ckpt"
    path.write_bytes(valid_bytes[:size])
    with pytest.raises(CheckpointError, match="truncated|not a cleanfit checkpoint"):
        CheckpointManager(tmp_path).load(path)


@SETTINGS
@given(data=st.data())
def test_a_checkpoint_with_a_changed_byte_is_always_refused(tmp_path, valid_bytes, data):
    offset = data.draw(st.integers(0, len(valid_bytes) - 1), label="offset")
    flip = data.draw(st.integers(1, 255), label="xor")
    corrupted = bytearray(valid_bytes)
    corrupted[offset] ^= flip
    path = tmp_path / "step-0000000007.ckpt"
    path.write_bytes(bytes(corrupted))
    with pytest.raises(CheckpointError, match="corrupt|truncated|not a cleanfit checkpoint"):
        CheckpointManager(tmp_path).load(path)


def test_appended_bytes_and_foreign_files_are_refused(tmp_path, valid_bytes):
    path = tmp_path / "step-0000000001.ckpt"
    path.write_bytes(valid_bytes + b"\0")
    with pytest.raises(CheckpointError, match="corrupt"):
        CheckpointManager(tmp_path).load(path)
    torch.save({"w": torch.zeros(1)}, path)  # a plain torch.save file has no cleanfit header
    with pytest.raises(CheckpointError, match="not a cleanfit checkpoint"):
        CheckpointManager(tmp_path).load(path)


# -- retention and the best marker -----------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keep_last=st.integers(1, 4),
    mode=st.sampled_from(["min", "max"]),
    metrics=st.lists(st.one_of(st.none(), st.integers(0, 5).map(float)), min_size=1, max_size=9),
)
def test_retention_keeps_the_newest_k_and_the_best(tmp_path_factory, keep_last, mode, metrics):
    directory = tmp_path_factory.mktemp("retention")
    manager = CheckpointManager(directory, keep_last=keep_last, mode=mode)
    best_step, best_metric = None, None
    for i, metric in enumerate(metrics):
        step = (i + 1) * 10
        manager.save({"step": step}, step=step, epoch=0, metric=metric)
        better = metric is not None and (
            best_metric is None or (metric < best_metric if mode == "min" else metric > best_metric)
        )
        if better:
            best_step, best_metric = step, metric
        steps = [(j + 1) * 10 for j in range(i + 1)]
        expected = set(steps[-keep_last:]) | ({best_step} if best_step is not None else set())
        assert {int(p.name[5:15]) for p in manager.list()} == expected
        assert len(list(directory.iterdir())) <= keep_last + 2  # files + the best.json marker
    reopened = CheckpointManager(directory, keep_last=keep_last, mode=mode)  # the marker survives a restart
    if best_step is None:
        assert reopened.best_path is None
    else:
        assert reopened.best_path == directory / f"step-{best_step:010d}.ckpt"
        assert json.loads((directory / "best.json").read_text())["metric"] == best_metric


def test_list_orders_by_step_number_not_by_name(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=5)
    for step in (99, 10_000_000_000, 5):  # more digits than the zero padding
        manager.save({"step": step}, step=step, epoch=0, metric=None)
    assert [manager.load(p)["step"] for p in manager.list()] == [10_000_000_000, 99, 5]


def test_invalid_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="keep_last=0"):
        CheckpointManager(tmp_path, keep_last=0)
    with pytest.raises(ConfigError, match="mode='low'"):
        CheckpointManager(tmp_path, mode="low")


# -- resolve ---------------------------------------------------------------------------------


def test_resolve_with_no_checkpoints_starts_fresh(tmp_path):
    assert CheckpointManager(tmp_path / "missing").resolve(True) is None
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert CheckpointManager(tmp_path).resolve(True) is None
    assert CheckpointManager(tmp_path).resolve(False) is None


def test_resolve_skips_a_corrupt_newest_checkpoint_with_a_warning(tmp_path):
    manager = CheckpointManager(tmp_path)
    for step in (1, 2, 3):
        manager.save(make_state(step), step=step, epoch=0, metric=None)
    newest = tmp_path / "step-0000000003.ckpt"
    newest.write_bytes(newest.read_bytes()[:-10])
    with pytest.warns(CheckpointWarning, match=r"step-0000000003.ckpt is truncated.*resuming from .*step-0000000002"):
        state = manager.resolve(True)
    assert state["step"] == 2 and manager.resolved_path == tmp_path / "step-0000000002.ckpt"


def test_resolve_refuses_to_start_over_when_every_checkpoint_is_invalid(tmp_path):
    manager = CheckpointManager(tmp_path)
    for step in (1, 2):
        path = manager.save(make_state(step), step=step, epoch=0, metric=None)
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="none of the 2 checkpoints .* is valid.*refusing to start over"):
        manager.resolve(True)


def test_resolve_a_path_a_name_a_directory_and_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=5)
    for step, metric in [(1, 0.1), (2, 0.3), (3, 0.2)]:
        manager.save(make_state(step), step=step, epoch=0, metric=metric)
    assert manager.resolve(tmp_path / "step-0000000002.ckpt")["step"] == 2
    assert manager.resolve("step-0000000002.ckpt")["step"] == 2  # relative to the checkpoint directory
    assert manager.resolve(str(tmp_path))["step"] == 3
    assert manager.resolve("best")["step"] == 1 and manager.resolved_path.name == "step-0000000001.ckpt"
    with pytest.raises(CheckpointError, match="no checkpoint at .*step-0000000009.ckpt"):
        manager.resolve(tmp_path / "step-0000000009.ckpt")
    corrupt = tmp_path / "step-0000000003.ckpt"
    corrupt.write_bytes(corrupt.read_bytes()[:-1])
    with pytest.raises(CheckpointError, match="truncated"):
        manager.resolve(corrupt)  # an explicit path is never swapped for another file


# -- safe loading ----------------------------------------------------------------------------


class _RunsCode:
    """Unpickling this object runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["torch.save", "raw pickle"])
def test_a_checkpoint_crafted_to_run_code_is_refused_and_runs_nothing(tmp_path, container):
    proof, marker = tmp_path / "proof", tmp_path / "marker"
    payload_for = {
        "torch.save": lambda m: _torch_save_bytes({"model": {"w": torch.zeros(1)}, "step": 1, "x": _RunsCode(m)}),
        "raw pickle": lambda m: pickle.dumps({"step": 1, "x": _RunsCode(m)}, protocol=2),
    }[container]
    # The payload is live: an unsafe load really runs the command.
    if container == "torch.save":
        torch.load(io.BytesIO(payload_for(proof)), weights_only=False)
    else:
        pickle.loads(payload_for(proof))
    assert proof.exists()

    directory = tmp_path / "ckpt"
    directory.mkdir()
    path = directory / "step-0000000001.ckpt"
    path.write_bytes(checkpoint_file.wrap(payload_for(marker), {"step": 1}))  # a valid checksum
    manager = CheckpointManager(directory)
    with pytest.raises(CheckpointError, match="refused to load .*could run code.*weights_only=True"):
        manager.load(path)
    with pytest.raises(CheckpointError, match="refused to load"):
        manager.resolve(True)  # never skipped quietly in favour of an older file
    assert not marker.exists()


def _torch_save_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_a_state_that_could_not_be_loaded_safely_is_refused_at_save(tmp_path):
    manager = CheckpointManager(tmp_path)
    with pytest.raises(CheckpointError, match=r"state\['rng'\]\['numpy'\]\[1\]: a numpy.ndarray"):
        manager.save({"rng": {"numpy": ("MT19937", np.zeros(3))}}, step=1, epoch=0, metric=None)
    with pytest.raises(CheckpointError, match=r"state\['lr'\]: a numpy.float64"):
        manager.save({"lr": np.float64(0.1)}, step=1, epoch=0, metric=None)
    assert list(tmp_path.iterdir()) == []


# -- unwritable directories and full disks ---------------------------------------------------


def test_a_checkpoint_dir_below_a_regular_file_is_reported_before_training(tmp_path):
    blocker = tmp_path / "results.csv"
    blocker.write_text("a file, not a directory")
    manager = CheckpointManager(blocker / "checkpoints")
    with pytest.raises(CheckpointError, match=r"cannot create checkpoint directory .*results.csv/checkpoints.*writable"):
        manager.check_writable()


def test_a_read_only_checkpoint_dir_is_reported_before_training(read_only_dir):
    manager = CheckpointManager(read_only_dir)
    with pytest.raises(CheckpointError, match=rf"{read_only_dir} is not writable.*choose a writable checkpoint_dir"):
        manager.check_writable()
    with pytest.raises(CheckpointError, match="checkpoint not saved, training stopped: could not write"):
        manager.save(make_state(), step=1, epoch=0, metric=None)


def test_a_file_size_limit_during_a_save_keeps_the_previous_checkpoint(tmp_path):
    """RLIMIT_FSIZE makes the real write fail with EFBIG, as a full disk fails it with ENOSPC."""
    proc = subprocess.run(
        [sys.executable, str(CHILD), "fsize-limit", str(tmp_path), str(64 * 1024)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "CheckpointError"
    assert "disk is full" in result["message"] and "step-0000000001.ckpt is unchanged" in result["message"]
    _assert_only_the_first_checkpoint(tmp_path)


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tiny_tmpfs):
    manager = CheckpointManager(tiny_tmpfs)
    manager.save({"w": torch.zeros(8), "step": 1}, step=1, epoch=0, metric=1.0)
    with pytest.raises(CheckpointError, match=r"disk is full.*step-0000000001.ckpt is unchanged.*free space"):
        manager.save({"w": torch.zeros(512 * 1024), "step": 2}, step=2, epoch=0, metric=0.5)
    _assert_only_the_first_checkpoint(tiny_tmpfs)


def _assert_only_the_first_checkpoint(directory: Path) -> None:
    manager = CheckpointManager(directory)
    assert [p.name for p in manager.list()] == ["step-0000000001.ckpt"]
    assert sorted(p.name for p in directory.iterdir()) == ["best.json", "step-0000000001.ckpt"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert manager.resolve(True)["step"] == 1


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory no one may write to: chmod for a normal user, a read-only tmpfs for root."""
    directory = tmp_path / "ro"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o500)
        yield directory
        directory.chmod(0o700)
        return
    with _mounted(directory, "ro,size=64k") as mounted:
        yield mounted


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 256 KiB filesystem, so a larger save fails with ENOSPC."""
    directory = tmp_path / "small-disk"
    directory.mkdir()
    with _mounted(directory, "size=256k") as mounted:
        yield mounted


class _mounted:
    def __init__(self, directory: Path, options: str) -> None:
        self.directory, self.options = directory, options

    def __enter__(self) -> Path:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", self.options, "tmpfs", str(self.directory)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            pytest.skip(f"needs permission to mount a tmpfs ({proc.stderr.strip() or 'mount failed'})")
        return self.directory

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", str(self.directory)], check=True)


# -- refusing a different run ----------------------------------------------------------------


def test_check_compatible_names_every_difference(tmp_path):
    saved = {"seed": 0, "num_examples": 100, "model": {"fc.weight": torch.Size([4, 3])}}
    check_compatible(saved, {"seed": 0, "num_examples": 100, "model": {"fc.weight": (4, 3)}})
    with pytest.raises(CheckpointError) as info:
        check_compatible(saved, {"seed": 1, "num_examples": 100, "model": {"fc.weight": (8, 3)}}, path=tmp_path / "c")
    message = str(info.value)
    assert "seed: checkpoint 0, now 1" in message and "model.fc.weight: checkpoint [4, 3], now [8, 3]" in message
    assert "num_examples" not in message and str(tmp_path / "c") in message
