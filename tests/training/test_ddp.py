"""DDP with real processes (gloo on CPU): two ranks of batch B train the same model as one process
of batch 2B, evaluate to the same numbers, resume on one rank from a two-rank checkpoint, and a rank
that dies makes the other exit with an error instead of hanging."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _dist import free_port, process_env

WORKER = Path(__file__).with_name("_ddp_worker.py")
TIMEOUT = 120  # seconds: a hang fails the test instead of stalling the suite


def _env(**extra: str) -> dict[str, str]:
    return process_env(**{"CLEANFIT_DIST_TIMEOUT": "20", **extra})


def _single(out: Path, *args: str) -> dict:
    """The single-process run, inside this test process (no torchrun variables here)."""
    sys.path.insert(0, str(WORKER.parent))
    try:
        from _ddp_worker import main
    finally:
        sys.path.remove(str(WORKER.parent))
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        main([str(out), *args])
    finally:
        torch.set_num_threads(threads)
    return torch.load(out / "result-rank0.pt", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One two-rank run under torchrun (batch 5, checkpoints every 2 steps) and one process of batch 10."""
    root = tmp_path_factory.mktemp("ddp")
    two = root / "two"
    two.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), str(WORKER), str(two), "--batch", "5", "--checkpoint-every", "2"]
    done = subprocess.run(command, env=_env(), timeout=TIMEOUT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        "root": root,
        "rank0": torch.load(two / "result-rank0.pt", weights_only=True),
        "rank1": torch.load(two / "result-rank1.pt", weights_only=True),
        "one": _single(root / "one", "--batch", "10"),
        "checkpoints": two / "checkpoints",
    }


def _close(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=atol)


def test_two_ranks_of_batch_b_equal_one_process_of_batch_2b(runs):
    two, one = runs["rank0"], runs["one"]
    assert two["world_size"] == 2 and one["world_size"] == 1
    _close(two["weights"], one["weights"])
    _close(runs["rank1"]["weights"], two["weights"], atol=0)  # ranks stay in lockstep
    # 5 batches per epoch on each rank, accumulate=2: 3 optimizer steps, and DDP all-reduces the
    # gradients once per step (no_sync on the other micro-batches), not once per batch
    assert two["gradient_allreduces"] == runs["rank1"]["gradient_allreduces"] == 9
    steps_two = [(r["epoch"], r["step"]) for r in two["history"]["epochs"]]
    assert steps_two == [(r["epoch"], r["step"]) for r in one["history"]["epochs"]] == [(1, 3), (2, 6), (3, 9)]
    for a, b in zip(two["history"]["epochs"], one["history"]["epochs"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)


def test_evaluation_and_prediction_equal_the_single_process(runs):
    two, one = runs["rank0"], runs["one"]
    assert two["evaluate"]["accuracy"] == one["evaluate"]["accuracy"]  # every example counted exactly once
    assert two["evaluate"]["loss"] == pytest.approx(one["evaluate"]["loss"], rel=1e-5)
    assert runs["rank1"]["evaluate"] == two["evaluate"]  # the same numbers on every rank
    assert two["predict"].shape == (17, 2)  # all 17 rows, in data order, no padding duplicates
    torch.testing.assert_close(two["predict"], one["predict"], rtol=0, atol=1e-5)
    torch.testing.assert_close(runs["rank1"]["predict"], two["predict"], rtol=0, atol=0)


def test_two_rank_checkpoint_resumes_on_one_rank(runs):
    checkpoints = sorted(runs["checkpoints"].glob("step-*.ckpt"))
    assert [p.name for p in checkpoints][:3] == ["step-0000000002.ckpt", "step-0000000003.ckpt",
                                                 "step-0000000004.ckpt"]
    # step 4 is mid-epoch 2: the resumed single process must continue at the exact next global batch
    out = runs["root"] / "resumed"
    resumed = _single(out, "--batch", "10", "--resume", str(runs["checkpoints"] / "step-0000000004.ckpt"))
    _close(resumed["weights"], runs["rank0"]["weights"])
    assert [r["step"] for r in resumed["history"]["epochs"]] == [3, 6, 9]
    assert resumed["history"]["epochs"][0] == runs["rank0"]["history"]["epochs"][0]  # restored, not retrained


def test_a_killed_rank_makes_the_other_exit_with_an_error(tmp_path):
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = _env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(tmp_path), "--batch", "5",
                                       "--kill-at-step", "2"], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    try:
        _, err0 = procs[0].communicate(timeout=TIMEOUT)  # bounded: a hang raises TimeoutExpired
        procs[1].communicate(timeout=TIMEOUT)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[1].returncode == -9  # killed itself at step 2
    assert procs[0].returncode not in (0, None), err0[-2000:]
    assert not (tmp_path / "result-rank0.pt").exists()
    # the survivor's error is cleanfit's one line, naming both ranks (not a raw gloo traceback)
    assert "TrainingError: rank 0 of 2: lost contact with rank 1" in err0, err0[-2000:]


def test_a_stopped_rank_ends_the_other_within_the_timeout_with_one_line_naming_it(tmp_path):
    port = str(free_port())
    procs = []
    for rank in (0, 1):
        env = _env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, CLEANFIT_DIST_TIMEOUT="5")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(tmp_path), "--batch", "5",
                                       "--kill-at-step", "2", "--signal", "SIGSTOP"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        _, err0 = procs[0].communicate(timeout=TIMEOUT)  # rank 1 is stopped, not dead: only the timeout ends it
    finally:
        procs[1].kill()
        procs[1].communicate(timeout=TIMEOUT)
        if procs[0].poll() is None:
            procs[0].kill()
    assert procs[0].returncode not in (0, None), err0[-2000:]
    assert "TrainingError: rank 0 of 2: lost contact with rank 1" in err0, err0[-2000:]
    assert "CLEANFIT_DIST_TIMEOUT = 5 s" in err0
    assert f"lost contact with rank 1 (pid {procs[1].pid} on " in err0  # its heartbeat stopped with it


@pytest.mark.parametrize("lost", [1, 2])
def test_with_three_ranks_the_survivors_name_the_killed_rank_from_its_heartbeat(tmp_path, lost):
    port = str(free_port())
    procs = []
    for rank in (0, 1, 2):
        env = _env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="3", LOCAL_WORLD_SIZE="3",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, CLEANFIT_DIST_TIMEOUT="5")
        procs.append(subprocess.Popen([sys.executable, str(WORKER), str(tmp_path), "--batch", "5",
                                       "--kill-at-step", "2", "--kill-rank", str(lost)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        errs = [p.communicate(timeout=TIMEOUT)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[lost].returncode == -9  # SIGKILLed itself after step 2
    for rank in {0, 1, 2} - {lost}:  # gloo's error names an address; the heartbeats name the rank
        assert procs[rank].returncode not in (0, None), errs[rank][-2000:]
        named = f"TrainingError: rank {rank} of 3: lost contact with rank {lost} (pid {procs[lost].pid} on "
        assert named in errs[rank], errs[rank][-2000:]
        line = errs[rank][errs[rank].index(named):].splitlines()[0]
        assert "which stopped responding at step 2 (its last heartbeat: step " in line
        assert line.count(", which ") == 1  # the other survivor is not blamed


def test_a_tracker_slower_to_start_than_the_collective_timeout_does_not_fail_the_run(tmp_path):
    # rank 0's tracker takes 4 s to open its run inside fit; every collective must finish within 2 s
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), str(WORKER), str(tmp_path), "--batch", "5", "--slow-tracker", "4"]
    done = subprocess.run(command, env=_env(CLEANFIT_DIST_TIMEOUT="2"), timeout=TIMEOUT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert torch.load(tmp_path / "result-rank1.pt", weights_only=True)["history"]["epochs"][-1]["step"] == 9


def test_a_rank_that_never_joins_is_one_line_within_the_timeout(tmp_path):
    env = _env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(free_port()), CLEANFIT_DIST_TIMEOUT="2")
    done = subprocess.run([sys.executable, str(WORKER), str(tmp_path), "--batch", "5"], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)  # rank 1 is never started
    assert done.returncode != 0
    assert ("TrainingError: rank 0 of 2: not every rank joined the process group within CLEANFIT_DIST_TIMEOUT = 2 s"
            in done.stderr), done.stderr[-2000:]
