"""step -> (loss, count) under DDP (real gloo ranks): two ranks of batch B with different token counts train
the same model as one process of batch 2B, with the same epoch means and evaluation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _dist import free_port
from test_ddp import TIMEOUT, _env

WORKER = Path(__file__).with_name("_ddp_tokens_worker.py")


def _run(out: Path, nproc: int, *args: str) -> list[dict]:
    out.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
               str(free_port()), str(WORKER), str(out), *args]
    if nproc == 1:
        command = [sys.executable, str(WORKER), str(out), *args]
    done = subprocess.run(command, env=_env(), timeout=TIMEOUT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return [torch.load(out / f"result-rank{r}.pt", weights_only=True) for r in range(nproc)]


def test_two_ranks_weight_by_the_global_token_count(tmp_path):
    rank0, rank1 = _run(tmp_path / "two", 2, "--batch", "3", "--workers", "1")
    (one,) = _run(tmp_path / "one", 1, "--batch", "6")
    for name, value in one["weights"].items():
        torch.testing.assert_close(rank0["weights"][name], value, rtol=0, atol=1e-5)
        torch.testing.assert_close(rank1["weights"][name], value, rtol=0, atol=1e-5)
    assert rank0["train_loss"] == pytest.approx(one["train_loss"], abs=1e-5)
    assert rank0["evaluate"] == pytest.approx(one["evaluate"], abs=1e-5)
