"""Running the candidates of a comparison: in this process or in spawned workers, one (candidate, seed) each.

A config candidate trains as ``cleanfit train`` would (untracked, in a temporary folder that is removed
after), with ``train.seed`` (and with ``vary_split`` also ``split.seed``) set to the seed; its outcome keeps
the run's metrics and what the comparison's MLflow child run records about the data: the data and split
fingerprints and the rows in each part.
"""

from __future__ import annotations

import json
import multiprocessing
import numbers
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleanfit.pipeline.config import Config
from cleanfit.pipeline.run import RUN_FILE, train_config

__all__ = ["Candidate", "Outcome", "run_all"]


@dataclass(frozen=True)
class Candidate:
    """One side of a comparison: a callable or a validated config (picklable, for worker processes)."""

    label: str  # "a" or "b"
    name: str  # what the table shows
    fn: Callable[[int], Any] | None = None
    config: Config | None = None  # validated, with user overrides; picklable
    params: dict[str, Any] = field(default_factory=dict)  # for the MLflow child runs


@dataclass(frozen=True)
class Outcome:
    """What one candidate gave at one seed."""

    value: Any  # a callable's return value (checked in the calling process)
    metrics: dict[str, float] = field(default_factory=dict)
    task: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # data and split fingerprints, rows per part


def run_all(cands: Sequence[Candidate], seeds: Sequence[int], vary_split: bool,
            workers: int) -> Iterator[tuple[Candidate, int, Outcome]]:
    """Every candidate at every seed, yielded as each finishes (in order with ``workers=1``)."""
    jobs = [(cand, seed) for seed in seeds for cand in cands]
    if workers == 1:
        for cand, seed in jobs:
            with _noted(cand, seed):
                outcome = _run_one(cand, seed, vary_split)
            yield cand, seed, outcome
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads,))
    try:
        pending = {pool.submit(_run_one, cand, seed, vary_split): (cand, seed) for cand, seed in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                cand, seed = pending.pop(future)
                with _noted(cand, seed):
                    outcome = future.result()
                yield cand, seed, outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _noted(cand: Candidate, seed: int) -> Iterator[None]:
    """Adds "while running candidate X at seed S" to an exception passing through."""
    try:
        yield
    except Exception as exc:
        exc.add_note(f"(while running compare candidate {cand.label} ({cand.name}) at seed {seed})")
        raise


def _init_worker(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))


def _run_one(cand: Candidate, seed: int, vary_split: bool) -> Outcome:
    """One candidate at one seed (in this process or a worker)."""
    if cand.fn is not None:
        return Outcome(cand.fn(seed))
    out = tempfile.mkdtemp(prefix=f"cleanfit-compare-{cand.label}-{seed}-")
    try:
        overrides = [f"train.seed={seed}", "tracking.backend=none", f"checkpoint.dir={out}/checkpoints"]
        if vary_split:
            overrides.append(f"split.seed={seed}")
        run = train_config(cand.config, out=out, overrides=overrides, quiet=True)
        metrics = {k: float(v) for k, v in run.metrics.items() if isinstance(v, numbers.Real)}
        return Outcome(None, metrics, run.task, _run_info(run, Path(out)))
    finally:
        shutil.rmtree(out, ignore_errors=True)




def _run_info(run: Any, out: Path) -> dict[str, Any]:
    """What a child run records about the data it trained on: fingerprints and rows per part."""
    splits = run.splits
    info: dict[str, Any] = {"split.fingerprint": splits.fingerprint,
                            **{f"rows.{part}": len(getattr(splits, part)) for part in ("train", "val", "test")}}
    try:
        info["data.fingerprint"] = json.loads((out / RUN_FILE).read_text())["data_fingerprint"]
    except (OSError, ValueError, KeyError):
        pass  # an older run folder without it: the split's fingerprint still names the rows
    return info
