"""One rank (or the single process) of the DDP tests in tests/test_ddp.py.

    python tests/training/_ddp_worker.py OUT --batch B [--checkpoint-every K] [--resume PATH] [--kill-at-step S [--kill-rank R] [--signal SIGSTOP]] [--slow-tracker SECONDS]

or, for the single-process runs, ``main([OUT, "--batch", "10"])`` inside the test process.

Under torchrun (or with RANK/WORLD_SIZE/MASTER_* set by the test) the Trainer joins the process
group itself; nothing here is distributed-aware except the file name of the result. The result
(``OUT/result-rank<r>.pt``) holds the final weights, the History, an evaluation and the predictions.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

import cleanfit as cf
from cleanfit.tracking import NullTracker

N_TRAIN, N_VAL = 41, 17  # 41 = 4 global batches of 10 and one of 1: rank 1 gets an empty batch


class SlowStart(NullTracker):
    """A tracker whose run takes ``seconds`` to open (a cold store on a slow disk); only rank 0 tracks."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def start(self, *, run_id: str | None = None) -> str | None:
        time.sleep(self.seconds)
        return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--checkpoint-every", type=int, default=None)
    parser.add_argument("--resume", default=None)
    parser.add_argument("--kill-at-step", type=int, default=None)
    parser.add_argument("--signal", default="SIGKILL", help="what the rank sends itself at --kill-at-step (SIGSTOP: it hangs)")
    parser.add_argument("--kill-rank", type=int, default=1, help="the rank that --kill-at-step signals")
    parser.add_argument("--slow-tracker", type=float, default=None, help="seconds rank 0's tracker takes to start")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N_TRAIN + N_VAL, 4)).astype("float32")
    y = (X[:, 0] - X[:, 1] > 0).astype("int64")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    trainer = cf.Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.9), loss=F.cross_entropy, device="cpu",
        precision="fp32", accumulate=2, clip_grad=1.0, schedule=cf.warmup_cosine(warmup=2), metrics=["accuracy"],
        checkpoint_dir=Path(args.out) / "checkpoints" if args.checkpoint_every or args.resume else None,
        checkpoint_every=args.checkpoint_every, keep_last=50, seed=0, progress=False, report=False,
        tracker=SlowStart(args.slow_tracker) if args.slow_tracker is not None else None,
    )
    if args.kill_at_step is not None and int(os.environ.get("RANK", "0")) == args.kill_rank:
        def die(trainer, state):
            if state.step == args.kill_at_step:
                os.kill(os.getpid(), getattr(signal, args.signal))
        trainer._after_step = die
    allreduces = [0]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # count DDP's gradient all-reduces (one bucket here)
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        def counting_hook(state, bucket):
            allreduces[0] += 1
            return default_hooks.allreduce_hook(None, bucket)

        trainer._prepare()
        trainer.net_.register_comm_hook(None, counting_hook)
    train = cf.Batches((X[:N_TRAIN], y[:N_TRAIN]), args.batch, seed=5)
    val = cf.Batches((X[N_TRAIN:], y[N_TRAIN:]), 4, shuffle=False)  # 17 = 2 x 8 + 1: an empty rank batch
    history = trainer.fit(train, val, epochs=3, resume=args.resume or False)
    result = {
        "weights": {k: v.clone() for k, v in model.state_dict().items()},
        "history": history.to_dict(),
        "evaluate": trainer.evaluate(val),
        "predict": trainer.predict(val),
        "world_size": trainer.dist_.world_size,
        "gradient_allreduces": allreduces[0],
    }
    torch.save(result, Path(args.out) / f"result-rank{trainer.dist_.rank}.pt")
    return result


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
