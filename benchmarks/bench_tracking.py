"""Does MLflow tracking slow training down? Steps per second, MLflow tracker on vs tracking off.

Same process, same model and data, runs interleaved (off, on, off, on, ...), the median ratio printed:

1. a hand-written loop that calls ``tracker.log_metrics`` (2 values) on EVERY optimizer step, the
   worst case, and every 10th step (the Trainer's ``log_every``): steps/s of the loop, and steps/s
   counting the final ``finish()`` too (the wait until the store holds every value);
2. ``cf.Trainer`` as users run it (``tracker=MLflowTracker()`` vs ``tracker=None``): step throughput
   measured inside the loop (timestamps of the ``step`` function calls, epoch ends included), and
   the whole ``fit()`` wall time, which also holds the one-off costs (opening the run, logging
   params, the HTML report and its upload).

Goal: on/off >= 0.95. Run: ``.venv/bin/python benchmarks/bench_tracking.py [--quick]``.
The store is a fresh SQLite database in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

import cleanfit as cf
from cleanfit.tracking.mlflow_tracker import MLflowTracker, NullTracker


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                               torch.nn.Linear(64, 1))


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 32, generator=g)
    return x, x[:, :1] * 2 + 0.1 * torch.randn(n, 1, generator=g)


def hand_loop(tracker, *, epochs: int, batches: int, every: int) -> dict[str, float]:
    """A plain loop logging 2 metrics every ``every`` steps: steps/s of the loop, steps/s counting the
    final finish() too, CPU µs per step of this process, and CPU seconds of the sender process."""
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = _data(64 * batches)
    tracker.start()
    sender = _sender_cpu()
    step = 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for b in range(batches):
            xb, yb = x[b * 64:(b + 1) * 64], y[b * 64:(b + 1) * 64]
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % every == 0:
                tracker.log_metrics({"batch_loss": loss.item(), "lr": 1e-3}, step=step)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    tracker.finish()
    return {"loop": step / elapsed, "with_finish": step / (time.perf_counter() - start),
            "cpu_us": cpu / step * 1e6, "sender_s": _sender_cpu() - sender, "values": 2 * (step // every)}


def _sender_cpu() -> float:
    """CPU seconds used so far by the tracker's sender process (Linux /proc; 0 where unknown)."""
    from cleanfit.tracking import mlflow_tracker as tracking

    link = tracking._LINK
    try:
        with open(f"/proc/{link._proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (AttributeError, OSError, IndexError, ValueError):
        return 0.0


def call_cost(tracker, calls: int = 100_000) -> float:
    """CPU µs this process spends per ``log_metrics`` call (2 values), buffering and handing chunks on."""
    tracker.start()
    start = time.process_time()
    for step in range(calls):
        tracker.log_metrics({"batch_loss": 0.5, "lr": 1e-3}, step=step)
    cost = (time.process_time() - start) / calls * 1e6
    tracker.finish()
    return cost


def trainer_run(tracker, *, epochs: int, n: int) -> tuple[float, float]:
    """(steps/s inside the loop, whole fit() seconds) of cf.Trainer."""
    stamps: list[float] = []

    def step(model, batch):
        stamps.append(time.perf_counter())
        xb, yb = batch
        return torch.nn.functional.mse_loss(model(xb), yb)

    model = _model()
    x, y = _data(n)
    trainer = cf.Trainer(model, torch.optim.AdamW(model.parameters(), lr=1e-3), step=step, tracker=tracker,
                         progress=False, device="cpu")
    start = time.perf_counter()
    trainer.fit(cf.Batches((x, y), 64, seed=0), epochs=epochs)
    total = time.perf_counter() - start
    steady = stamps[len(stamps) // epochs:]  # from the second epoch on: past the run's start-up
    return (len(steady) - 1) / (steady[-1] - steady[0]), total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, noisier)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: the "
                        "tracker's sender process gets the other core of a small machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    epochs, batches = (3, 200) if args.quick else (5, 400)
    os.chdir(tempfile.mkdtemp(prefix="bench-tracking-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{os.getcwd()}/mlflow.db"
    load = os.getloadavg()
    warm = MLflowTracker(experiment="warmup")  # migrate the store and start the sender once, untimed
    warm.start()
    warm.finish()

    ratios: dict[str, list[float]] = {}
    sender_us: list[float] = []
    for _ in range(args.repeats):
        for every in (1, 10):
            off = hand_loop(NullTracker(), epochs=epochs, batches=batches, every=every)
            on = hand_loop(MLflowTracker(experiment="bench"), epochs=epochs, batches=batches, every=every)
            ratios.setdefault(f"hand loop, log every {every:2d}: loop steps/s", []).append(on["loop"] / off["loop"])
            ratios.setdefault(f"hand loop, log every {every:2d}: with the final finish()", []).append(
                on["with_finish"] / off["loop"])
            ratios.setdefault(f"hand loop, log every {every:2d}: CPU time per step (off/on)", []).append(
                off["cpu_us"] / on["cpu_us"])
            if on["sender_s"] and every == 1:
                sender_us.append(on["sender_s"] / on["values"] * 1e6)
            print(f"hand loop, log every {every:2d}: off {off['loop']:6.0f} steps/s {off['cpu_us']:5.0f} µs CPU/step   "
                  f"on {on['loop']:6.0f} steps/s {on['cpu_us']:5.0f} µs CPU/step, {on['with_finish']:6.0f} steps/s "
                  f"incl. finish(); sender {on['sender_s']:.2f} s CPU for {on['values']} values")
        off_loop, off_fit = trainer_run(None, epochs=epochs, n=64 * batches)
        on_loop, on_fit = trainer_run(MLflowTracker(experiment="bench"), epochs=epochs, n=64 * batches)
        ratios.setdefault("cf.Trainer loop", []).append(on_loop / off_loop)
        ratios.setdefault("cf.Trainer whole fit() (one-off costs included)", []).append(off_fit / on_fit)
        print(f"cf.Trainer loop:      off {off_loop:6.0f} steps/s   on {on_loop:6.0f} steps/s ({on_loop / off_loop:.3f})   "
              f"whole fit(): off {off_fit:.2f} s, on {on_fit:.2f} s ({off_fit / on_fit:.3f})")
    on_cost, off_cost = call_cost(MLflowTracker(experiment="calls")), call_cost(NullTracker())
    step_us = statistics.median(1e6 / r for r in (hand_loop(NullTracker(), epochs=1, batches=batches, every=1)["loop"]
                                                for _ in range(3)))
    print(f"log_metrics call (2 values), CPU in the training process: MLflowTracker {on_cost:.2f} µs, "
          f"NullTracker {off_cost:.2f} µs; a training step here: {step_us:.0f} µs -> expected on/off when the "
          f"sender has a core of its own: {step_us / (step_us + on_cost - off_cost):.3f}")
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, python {sys.version.split()[0]}; "
          f"{epochs} epochs x {batches} steps, MLP 32-64-64-1, batch 64")
    print(f"load average before: {load[0]:.1f}, after: {os.getloadavg()[0]:.1f}")
    print("median on/off (goal >= 0.95):")
    for name, values in ratios.items():
        print(f"  {name:58s} {statistics.median(values):.3f}")
    if sender_us:
        print(f"sender process CPU per logged value (MLflow log_batch into SQLite): {statistics.median(sender_us):.0f} µs")


if __name__ == "__main__":
    main()
