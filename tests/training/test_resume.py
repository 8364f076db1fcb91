"""Kill-and-resume: a run SIGKILLed anywhere and resumed ends bit-identical to an uninterrupted run.

Every run is a real child process (tests/training/_resume_script.py): a tiny MLP with dropout, shuffled
Batches, accumulate=3 with a partial last window, clipping, warmup+cosine, a checkpoint every 2
optimizer steps and validation each epoch; 13 batches and 5 optimizer steps per epoch, 3 epochs.
The script kills itself with a real SIGKILL at an exact point (a loss call, an ``os.fsync``);
``fit(resume=True)`` then continues from the newest valid checkpoint. The model, optimizer and
scheduler state, the History, the RNG states and the Batches position at the end must equal those
of the uninterrupted run bit for bit, and the resumed run must have trained only what was lost.

To keep this fast, one server process imports torch once and forks a fresh child per run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cleanfit.data.batches import Batches
from cleanfit.errors import CheckpointError
from cleanfit.training.checkpoints import CheckpointManager
from cleanfit.training.trainer import Trainer

SCRIPT = Path(__file__).with_name("_resume_script.py")
BATCHES_PER_EPOCH, ACCUMULATE, STEPS_PER_EPOCH, EPOCHS = 13, 3, 5, 3

# name -> (the runs before the final `--resume` run, each one killed; the newest valid checkpoint's step
# after the kills; a temp file the kill leaves behind). The loss is called once per training micro-batch:
# call 14 is batch 0 of epoch 2, so call 20 starts a window (batch 6) and call 18 is the 2nd micro-batch
# of one. Checkpoints: steps 2, 4, 5 (epoch end), 6, 8, 10 (epoch end), 12, 14, 15. fsync 1 is the
# writability probe; 2-3 the step-2 checkpoint, 4-5 step 4, 6-9 the epoch-end checkpoint of step 5
# (its temp file, the directory, then best.json's temp file and the directory).
SCENARIOS = {
    "before the first checkpoint": ([["--kill-train-loss", "5"]], None, None),
    "mid-epoch at a window boundary": ([["--kill-train-loss", "20"]], 6, None),
    "mid-accumulation-window": ([["--kill-train-loss", "18"]], 6, None),
    "during evaluation": ([["--kill-eval-loss", "5"]], 8, None),
    "during a checkpoint write, before its rename": ([["--kill-fsync", "6"]], 4, ".step-0000000005.ckpt.*.tmp"),
    "after the rename, writing best.json": ([["--kill-fsync", "8"]], 5, ".best.json.*.tmp"),
    "killed again while resumed": ([["--kill-train-loss", "30"], ["--resume", "--kill-eval-loss", "2"]], 14, None),
}
BF16_SCENARIOS = ["mid-accumulation-window", "during evaluation", "during a checkpoint write, before its rename"]
CASES = [("fp32", name) for name in SCENARIOS] + [("bf16", name) for name in BF16_SCENARIOS]


class _Runner:
    """Runs the script in a fresh child process per call, forked from one server (see the script)."""

    def __init__(self, log: Path) -> None:
        self.log = log.open("w")
        self.server = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, cwd=log.parent,
        )

    def __call__(self, out: Path, precision: str, *extra: str) -> int:
        self.server.stdin.write(json.dumps([str(out), "--precision", precision, *extra]) + "\n")
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        assert line, f"the resume server died; see {self.log.name}"
        return json.loads(line)["returncode"]

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=60)
        self.log.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    runner = _Runner(tmp_path_factory.mktemp("resume-server") / "children.log")
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def reference(run, tmp_path_factory):
    """The uninterrupted run of each precision."""
    results = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path_factory.mktemp(f"reference-{precision}")
        assert run(out, precision) == 0
        results[precision] = _result(out)
        assert results[precision]["train_loss_calls"] == EPOCHS * BATCHES_PER_EPOCH
    return results


@pytest.mark.parametrize(("precision", "scenario"), CASES, ids=[f"{p}-{s}" for p, s in CASES])
def test_a_killed_run_resumes_bit_identical(run, reference, tmp_path, precision, scenario):
    kills, expected_step, leftover = SCENARIOS[scenario]
    for i, kill in enumerate(kills):
        assert run(tmp_path, precision, *kill) == -9, f"run {i + 1} ({kill}) was not killed"
        assert not (tmp_path / "result.pt").exists()
    step = _newest_valid_step(tmp_path / "ckpt")
    assert step == expected_step  # None: no checkpoint yet, so resume=True starts fresh
    if leftover is not None:
        assert list((tmp_path / "ckpt").glob(leftover)), f"the kill left no {leftover}"

    assert run(tmp_path, precision, "--resume") == 0
    result = _result(tmp_path)
    assert list((tmp_path / "ckpt").glob(".*.tmp")) == []  # the dead writer's temp file is cleaned up
    assert len(CheckpointManager(tmp_path / "ckpt").list()) <= 3  # keep_last=2, plus the best
    # Only what was lost is trained again: no replay from the start, nothing skipped.
    assert result["train_loss_calls"] == EPOCHS * BATCHES_PER_EPOCH - _batches_done(step or 0)
    _assert_identical(result, reference[precision])


def test_the_comparison_catches_a_resume_without_rng_restore(run, reference, tmp_path):
    """Control: dropout draws from the torch RNG, so skipping its restore changes the final model."""
    assert run(tmp_path, "fp32", "--kill-train-loss", "20") == -9
    assert run(tmp_path, "fp32", "--resume", "--break-rng-restore") == 0
    result = _result(tmp_path)
    assert not torch.equal(result["model"]["0.weight"], reference["fp32"]["model"]["0.weight"])


def test_a_run_through_workers_is_bit_identical_and_resumes_with_another_number_of_workers(run, reference, tmp_path):
    """An augmented Dataset: 0 or 3 workers train the same model; SIGKILLed with 3 workers (mid-window) and
    resumed with 1, the run still ends bit-identical."""
    assert run(tmp_path / "w0", "fp32", "--workers", "0") == 0
    assert run(tmp_path / "w3", "fp32", "--workers", "3") == 0
    base = _result(tmp_path / "w0")
    _assert_identical(_result(tmp_path / "w3"), base)
    assert not torch.equal(base["model"]["0.weight"], reference["fp32"]["model"]["0.weight"])  # augmentation acts
    assert run(tmp_path / "killed", "fp32", "--workers", "3", "--kill-train-loss", "18") == -9
    assert run(tmp_path / "killed", "fp32", "--workers", "1", "--resume") == 0
    _assert_identical(_result(tmp_path / "killed"), base)


def test_a_killed_tracked_run_continues_its_mlflow_run_without_gaps_or_duplicates(run, tmp_path, mlflow_tracking_uri):
    from mlflow.tracking import MlflowClient

    out, uri = tmp_path / "tracked", mlflow_tracking_uri
    assert run(out, "fp32", "--mlflow", uri, "--kill-train-loss", "20") == -9
    run_id = CheckpointManager(out / "ckpt").resolve(True)["run_id"]
    assert run_id is not None
    assert run(out, "fp32", "--mlflow", uri, "--resume") == 0

    client = MlflowClient(uri)
    (resumed,) = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])  # no second run
    assert resumed.info.run_id == run_id and resumed.info.status == "FINISHED"
    history = _result(out)["history"]  # equal to the uninterrupted run's (the tests above)
    expected = {
        "batch_loss": [(row["step"], row["train_loss"]) for row in history["steps"]],
        "train_loss": [(row["step"], row["train_loss"]) for row in history["epochs"]],
        "val_loss": [(row["step"], row["val_loss"]) for row in history["epochs"]],
    }
    for key, points in expected.items():  # every point once: nothing lost in the kill, nothing sent twice
        assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) == sorted(points), key


def _result(out: Path) -> dict:
    return torch.load(out / "result.pt", weights_only=True)


def _newest_valid_step(directory: Path) -> int | None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # atomic writes: a kill never leaves a corrupt newest file
        state = CheckpointManager(directory).resolve(True)
    return None if state is None else state["step"]


def _batches_done(step: int) -> int:
    epochs, windows = divmod(step, STEPS_PER_EPOCH)
    return epochs * BATCHES_PER_EPOCH + min(windows * ACCUMULATE, BATCHES_PER_EPOCH)


def _assert_identical(actual, expected, where: str = "result") -> None:
    if where == "result.train_loss_calls":
        return
    assert type(actual) is type(expected), where
    if isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, where
        assert torch.equal(actual, expected), f"{where} differs"
    elif isinstance(expected, dict):
        assert actual.keys() == expected.keys(), where
        for key in expected:
            _assert_identical(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            _assert_identical(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


# -- refusing to resume a different run (in process: no kill needed) --------------------------


def _fit(directory: Path, *, seed: int = 0, n: int = 48, hidden: int = 8, resume: bool = False) -> None:
    torch.manual_seed(0)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32))
    model = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), loss=nn.functional.cross_entropy,
                      device="cpu", checkpoint_dir=directory, seed=seed, progress=False,
                      report=False)  # the end-of-run HTML report (matplotlib) is not what these tests are about
    trainer.fit(Batches((x, (x[:, 0] > 0).long()), 16), epochs=1, resume=resume)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": 1}, r"seed: checkpoint 0, now 1"),
        ({"n": 64}, r"num_train_examples: checkpoint 48, now 64"),
        ({"hidden": 16}, r"parameters.0.weight: checkpoint \[8, 4\], now \[16, 4\]"),
    ],
)
def test_resuming_a_different_run_is_refused_naming_what_differs(tmp_path, change, message):
    _fit(tmp_path)
    with pytest.raises(CheckpointError, match=rf"written for a different run \(.*{message}"):
        _fit(tmp_path, resume=True, **change)


def test_resume_with_only_invalid_checkpoints_refuses_to_start_over(tmp_path):
    _fit(tmp_path)
    for path in CheckpointManager(tmp_path).list():
        path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(CheckpointError, match="refusing to start over silently"):
        _fit(tmp_path, resume=True)
