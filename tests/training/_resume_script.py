"""A training run for test_resume.py, killed for real (SIGKILL) at a chosen point, and resumed.

    python tests/training/_resume_script.py OUT --precision fp32|bf16 [--resume] [--kill-train-loss N]
                                   [--kill-eval-loss N] [--kill-fsync N] [--workers W]
    python tests/training/_resume_script.py --serve     # fork a fresh child per JSON argument list on stdin

A tiny MLP with dropout, shuffled Batches, accumulate=3 (with a partial last window and a partial
last batch; ``--workers W``: the rows through a Dataset with random augmentation, loaded by W worker
processes), clipping, warmup+cosine, a checkpoint every 2 optimizer steps, validation each epoch.
The kill switches are read here, by this script, never by cleanfit:

- ``--kill-train-loss N``: the N-th call of the loss with gradients on (a training micro-batch);
  a call that is not the first of its accumulation window kills mid-window.
- ``--kill-eval-loss N``: the N-th call of the loss without gradients (a validation batch).
- ``--kill-fsync N``: the N-th ``os.fsync`` of this process (1 is the Trainer's writability
  probe; then each checkpoint fsyncs its temp file, its directory, and best.json's two).

A run that finishes writes ``OUT/result.pt``: the model and optimizer state, the History and the
final RNG states, for a bit-for-bit comparison with an uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import traceback
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cleanfit.data.batches import Batches
from cleanfit.seeding import example_rng
from cleanfit.training.schedules import warmup_cosine
from cleanfit.training.trainer import Trainer

EPOCHS, CHECKPOINT_EVERY = 3, 2
LOSS_CALLS = {True: 0, False: 0}  # loss calls with gradients (training) / without (evaluation)


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_at_fsync(n: int) -> None:
    real_fsync, calls = os.fsync, [0]

    def fsync(fd: int) -> None:
        calls[0] += 1
        if calls[0] == n:
            _die()
        real_fsync(fd)

    os.fsync = fsync


def _loss(kill_train: int | None, kill_eval: int | None):
    counts = LOSS_CALLS

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        training = torch.is_grad_enabled()
        counts[training] += 1
        if counts[training] == (kill_train if training else kill_eval):
            _die()
        return nn.functional.cross_entropy(outputs.float(), targets)

    return loss


class _Augmented(torch.utils.data.Dataset):
    """The train rows with random augmentation from every RNG a user might draw from (``--workers``)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        noise = 0.1 * torch.randn(6) + float(example_rng().normal(scale=0.1)) + 0.1 * random.random()
        return self.x[i] + noise * float(np.random.rand()), self.y[i]


def _data(workers: int | None = None) -> tuple[Batches, Batches]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(140, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    rows = (torch.from_numpy(x[:100]), torch.from_numpy(y[:100]))
    if workers is not None:  # the same rows through a Dataset with augmentation, loaded by that many workers
        train = Batches(_Augmented(*rows), 8, seed=1, workers=workers)
    else:
        train = Batches(rows, 8, seed=1)  # 13 batches, last of 4
    val = Batches((torch.from_numpy(x[100:]), torch.from_numpy(y[100:])), 16, shuffle=False)
    return train, val


def _tracker(args: argparse.Namespace):
    if args.mlflow is None:
        return None
    from cleanfit.tracking.mlflow_tracker import MLflowTracker

    return MLflowTracker(experiment=args.out.name, tracking_uri=args.mlflow, unlogged_dir=args.out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-train-loss", type=int)
    parser.add_argument("--kill-eval-loss", type=int)
    parser.add_argument("--kill-fsync", type=int)
    parser.add_argument("--workers", type=int, help="train on an augmented Dataset loaded by this many workers")
    parser.add_argument("--mlflow", metavar="URI", help="track the run in this MLflow store")
    parser.add_argument("--break-rng-restore", action="store_true", help="control: resume without the RNG states")
    args = parser.parse_args(argv)
    if args.kill_fsync:
        _kill_at_fsync(args.kill_fsync)
    if args.break_rng_restore:
        import cleanfit.training.resume

        cleanfit.training.resume.set_rng_state = lambda state: None

    torch.set_num_threads(1)
    torch.manual_seed(0)  # the same initial weights in every process
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    trainer = Trainer(
        model, optimizer, loss=_loss(args.kill_train_loss, args.kill_eval_loss), device="cpu",
        precision=args.precision, accumulate=3, clip_grad=1.0, schedule=warmup_cosine(),
        metrics=["accuracy"], checkpoint_dir=args.out / "ckpt", checkpoint_every=CHECKPOINT_EVERY,
        keep_last=2, seed=0, progress=False, tracker=_tracker(args),
        report=False,  # the end-of-run HTML report (matplotlib) is not part of the training state
    )
    train, val = _data(args.workers)
    history = trainer.fit(train, val, epochs=EPOCHS, resume=args.resume)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": None if trainer.scheduler_ is None else trainer.scheduler_.state_dict(),
            "history": history.to_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()[1].tolist(),
                    "python": list(random.getstate()[1])},
            "train_batches": train.state_dict(),
            "train_loss_calls": LOSS_CALLS[True],
        },
        args.out / "result.pt",
    )


def serve() -> None:
    """Import torch once, then fork one child per JSON argument list read from stdin.

    Each child is a real process that runs :func:`main` (and may SIGKILL itself); the parent only
    waits and prints one JSON line per child: ``{"returncode": 0 | 1 | -signal}``. The parent never
    runs a torch operation, so forking after ``import torch`` is safe.
    """
    import torch._dynamo  # noqa: F401 - imported by the first optimizer; seconds, so once, here

    for line in sys.stdin:
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: its stdout goes to stderr, so the protocol stays clean
            os.dup2(2, 1)
            code = 1
            try:
                main(argv)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        returncode = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"returncode": returncode}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main()
