"""A full disk at every stage of a run: exit 0 or one line and exit 2, never a partial file or "running".

The limit is a file size limit (``_limited_cli.py``: ``RLIMIT_FSIZE``, which fails a write with
``EFBIG`` exactly where a full disk fails with ``ENOSPC``). The levels are chosen from the sizes of
this tiny run's files (run.json ~1.3 kB, checkpoints ~25 kB, the loss plot ~47 kB, report.html
~68 kB), so each stops the run at a different write: the first run file, a checkpoint, and the
outputs written after training (plot, report, model, metrics all go through the same path).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cleanfit.pipeline.demo import write_breast_cancer
from cleanfit.training.checkpoint_file import decode

LIMITED_CLI = Path(__file__).with_name("_limited_cli.py")
SMALL = ["--set", "model.hidden=[8]", "--set", "train.epochs=2", "--set", "train.batch_size=128",
         "--set", "tracking.backend=none"]


@pytest.fixture(scope="module")
def cancer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_breast_cancer(folder / "cancer.csv")
    config = folder / "cancer.toml"
    config.write_text(f'[data]\npath = "{folder / "cancer.csv"}"\ntarget = "diagnosis"\n')
    return config


def _complete(path: Path) -> bool:
    """Whether a file the run wrote is whole (each kind by its own end marker or loader)."""
    data = path.read_bytes()
    if path.suffix == ".json":
        json.loads(data)
    elif path.suffix == ".html":
        return data.rstrip().endswith(b"</html>")
    elif path.suffix == ".png":
        return data.endswith(b"IEND\xaeB`\x82")
    elif path.suffix == ".pt":
        torch.load(path, weights_only=True)
    elif path.suffix == ".ckpt":
        decode(data, path)
    return True


@pytest.mark.parametrize("limit", [1_000, 10_000, 30_000])  # the run file, a checkpoint, the outputs
def test_a_full_disk_stops_the_run_cleanly_at_every_stage(tmp_path: Path, cancer: Path, limit: int) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(LIMITED_CLI), str(limit), "train", str(cancer), "--out", str(out),
                           *SMALL], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 2), proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("cleanfit: error: ") and str(out) in last, last
    assert "bytes" in last  # the space it needed
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no temporary left behind
    for path in out.rglob("*"):
        if path.is_file() and path.name != ".cleanfit.lock":
            assert _complete(path), path
    run_file = out / "run.json"
    if run_file.exists():
        status = json.loads(run_file.read_text())["status"]
        assert status == "failed"
