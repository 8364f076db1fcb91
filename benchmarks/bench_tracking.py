"""Does MLflow tracking slow training down? Steps per second, MLflow tracker on vs tracking off, and
the sender process of ``MLflowTracker`` against its peer, MLflow's own asynchronous logging
(``MlflowClient.log_batch(..., synchronous=False)``, what ``mlflow.log_metrics(..., synchronous=False)``
and ``MLFLOW_ENABLE_ASYNC_LOGGING`` use: a queue and background threads in the training process).

Same process, same model and data, runs interleaved (off, process, async, off, ...), the median ratio
printed:

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
from cleanfit.tracking import MLflowTracker, NullTracker
from cleanfit.tracking.sender import SHARED


class MLflowAsync:
    """The peer: a Tracker that logs with MLflow's own asynchronous logging, in the training process.

    Each ``log_metrics`` is one ``MlflowClient.log_batch(..., synchronous=False)``: MLflow queues it and
    its background threads merge queued batches and write them; ``flush``/``finish`` wait for them
    (``mlflow.flush_async_logging()``). Artifacts are copied synchronously, as MLflow does.
    """

    run_id: str | None = None

    def __init__(self, experiment: str) -> None:
        import mlflow  # noqa: F401 - heavy (seconds): the peer pays it in the training process
        from mlflow import MlflowClient

        self.experiment = experiment
        self._client = MlflowClient()  # MLFLOW_TRACKING_URI

    def start(self, *, run_id: str | None = None) -> str | None:
        found = self._client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found else self._client.create_experiment(self.experiment)
        self.run_id = self._client.create_run(experiment_id).info.run_id
        return self.run_id

    def log_metrics(self, metrics, step: int) -> None:
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        self._client.log_batch(self.run_id, metrics=[Metric(k, float(v), timestamp, step) for k, v in metrics.items()],
                               synchronous=False)

    def log_params(self, params) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i:i + 100], synchronous=False)

    def set_tags(self, tags) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()], synchronous=False)

    def log_artifact(self, path, artifact_path=None) -> None:
        if os.path.isdir(path):
            self._client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def flush(self) -> None:
        import mlflow

        mlflow.flush_async_logging()

    def finish(self, status: str = "FINISHED") -> None:
        self.flush()
        self._client.set_terminated(self.run_id, status=status)


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
    try:
        with open(f"/proc/{SHARED.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def call_cost(tracker, calls: int = 10_000) -> dict[str, float]:
    """Per ``log_metrics`` call (2 values): wall µs of the call loop, CPU µs this process spends in
    it (background threads included), and CPU µs of this process counting ``finish()`` too (until the
    store holds everything)."""
    tracker.start()
    start, cpu = time.perf_counter(), time.process_time()
    for step in range(calls):
        tracker.log_metrics({"batch_loss": 0.5, "lr": 1e-3}, step=step)
    wall, loop_cpu = time.perf_counter() - start, time.process_time() - cpu
    tracker.finish()
    total_cpu = time.process_time() - cpu
    return {"wall_us": wall / calls * 1e6, "cpu_us": loop_cpu / calls * 1e6, "total_cpu_us": total_cpu / calls * 1e6}


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

    import_start = time.perf_counter()
    peer = MLflowAsync(experiment="warmup")  # import MLflow in this process once, untimed below
    import_s = time.perf_counter() - import_start
    peer.start()
    peer.finish()

    trackers = {"process": lambda: MLflowTracker(experiment="bench"), "async": lambda: MLflowAsync("bench")}
    ratios: dict[str, dict[str, list[float]]] = {}

    def note(name: str, kind: str, value: float) -> None:
        ratios.setdefault(name, {}).setdefault(kind, []).append(value)

    sender_us: list[float] = []
    for _ in range(args.repeats):
        for every in (1, 10):
            off = hand_loop(NullTracker(), epochs=epochs, batches=batches, every=every)
            for kind, make in trackers.items():
                on = hand_loop(make(), epochs=epochs, batches=batches, every=every)
                note(f"hand loop, log every {every:2d}: loop steps/s", kind, on["loop"] / off["loop"])
                note(f"hand loop, log every {every:2d}: with the final finish()", kind, on["with_finish"] / off["loop"])
                note(f"hand loop, log every {every:2d}: CPU time per step (off/on)", kind, off["cpu_us"] / on["cpu_us"])
                if kind == "process" and on["sender_s"] and every == 1:
                    sender_us.append(on["sender_s"] / on["values"] * 1e6)
                print(f"hand loop, log every {every:2d}: off {off['loop']:6.0f} steps/s {off['cpu_us']:5.0f} µs CPU/step"
                      f"   {kind:7s} {on['loop']:6.0f} steps/s {on['cpu_us']:5.0f} µs CPU/step, "
                      f"{on['with_finish']:6.0f} steps/s incl. finish()")
        off_loop, off_fit = trainer_run(None, epochs=epochs, n=64 * batches)
        for kind, make in trackers.items():
            on_loop, on_fit = trainer_run(make(), epochs=epochs, n=64 * batches)
            note("cf.Trainer loop", kind, on_loop / off_loop)
            note("cf.Trainer whole fit() (one-off costs included)", kind, off_fit / on_fit)
            print(f"cf.Trainer loop:      off {off_loop:6.0f} steps/s   {kind:7s} {on_loop:6.0f} steps/s "
                  f"({on_loop / off_loop:.3f})   whole fit(): off {off_fit:.2f} s, on {on_fit:.2f} s ({off_fit / on_fit:.3f})")
    costs = {"process": call_cost(MLflowTracker(experiment="calls")), "async": call_cost(MLflowAsync("calls")),
             "off": call_cost(NullTracker())}
    step_us = statistics.median(1e6 / r for r in (hand_loop(NullTracker(), epochs=1, batches=batches, every=1)["loop"]
                                                for _ in range(3)))
    print("log_metrics call (2 values), in the training process:")
    for kind, cost in costs.items():
        print(f"  {kind:7s} wall {cost['wall_us']:7.2f} µs/call, CPU {cost['cpu_us']:7.2f} µs/call in the loop, "
              f"{cost['total_cpu_us']:7.2f} µs/call counting finish()")
    extra = costs["process"]["cpu_us"] - costs["off"]["cpu_us"]
    print(f"a training step here: {step_us:.0f} µs -> expected on/off for the process when the sender has a core "
          f"of its own: {step_us / (step_us + extra):.3f}; for async (its threads share this process): "
          f"{step_us / (step_us + costs['async']['total_cpu_us'] - costs['off']['cpu_us']):.3f}")
    print(f"import mlflow in the training process (async only): {import_s:.2f} s")
    print()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, python {sys.version.split()[0]}; "
          f"{epochs} epochs x {batches} steps, MLP 32-64-64-1, batch 64")
    print(f"load average before: {load[0]:.1f}, after: {os.getloadavg()[0]:.1f}")
    print("median on/off (goal >= 0.95):                               process    async")
    for name, by_kind in ratios.items():
        print(f"  {name:58s} {statistics.median(by_kind['process']):.3f}    {statistics.median(by_kind['async']):.3f}")
    if sender_us:
        print(f"sender process CPU per logged value (MLflow log_batch into SQLite): {statistics.median(sender_us):.0f} µs")


if __name__ == "__main__":
    main()
