"""Honest multi-seed comparison: did model B really win, or was its seed luckier?

:func:`compare` trains (or calls) candidates A and B on the same seeds, pairs their scores seed by
seed and asks whether the mean paired difference ``b - a`` is distinguishable from 0 with the 95%
paired t interval (a winner for two equally good candidates at most 5% of the time, at any number of
seeds: :mod:`cleanfit.comparison.stats`). Pairing removes the noise both candidates share (the same
split, the same data order, the same initial draw of the RNG), so far fewer seeds tell the two apart
than comparing two unpaired means would need.

>>> import random
>>> def base(seed):       # a noisy score: the same noise for a given seed
...     return 0.80 + random.Random(seed).gauss(0, 0.02)
>>> def better(seed):
...     return base(seed) + 0.01 + random.Random(1000 + seed).gauss(0, 0.002)
>>> result = compare(base, better)          # 10 seeds
>>> result.verdict
'b'
>>> compare(base, base).verdict
'tie'
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import pickle
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Union

from cleanfit._util.args import is_flag, is_int, is_seed, takes_args
from cleanfit.comparison.mlflow_log import ComparisonLog, resolve_target
from cleanfit.comparison.result import Comparison, Verdict
from cleanfit.comparison.runner import Candidate as _Candidate
from cleanfit.comparison.runner import Outcome as _Outcome
from cleanfit.comparison.runner import run_all
from cleanfit.errors import ConfigError, DataError
from cleanfit.pipeline.config import DataConfig, load_config

__all__ = ["compare", "Comparison", "Candidate", "Verdict"]

Candidate = Union[str, Path, Mapping[str, Any], Callable[[int], float]]
"""A TOML config path, a config mapping, or a callable ``candidate(seed) -> score``."""

# the main metric of each task, and which way it is better
_DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}
_LOWER_IS_BETTER = ("loss", "rmse", "mse", "mae", "error", "perplexity")


def compare(
    a: Candidate,
    b: Candidate,
    *,
    seeds: int | Sequence[int] = 10,
    higher_is_better: bool | None = None,
    metric: str | None = None,
    split: str = "val",
    vary_split: bool = False,
    overrides: Sequence[str] = (),
    workers: int = 1,
    tracker: Any = "auto",
    progress: bool = False,
) -> Comparison:
    """Run A and B on the same seeds and compare their scores pair by pair.

    Args:
        a, b: each a config (a TOML path or a dict, trained as ``cleanfit train`` would, with
            ``train.seed`` set to the seed) or a callable ``candidate(seed) -> float``.
        seeds: how many seeds (``0 .. seeds-1``, default 10) or the seeds themselves; at least 2.
        higher_is_better: the direction of the metric. None (the default) reads it from the
            metric's name: losses and errors (``loss``, ``rmse``, ``mae`` ...) are lower-is-better,
            everything else, and any callable's score, is higher-is-better.
        metric: for configs, the metric to compare, e.g. ``"val_auc"`` or just ``"auc"`` (prefixed
            with ``split``). Default: the task's main metric, accuracy for classification and RMSE
            for regression. For callables it only names the score.
        split: ``"val"`` (default) or ``"test"``: which part of the data the metric is measured on.
            Choose models on validation scores; look at the test score once, at the end.
        vary_split: also set ``split.seed`` to the seed, so the comparison includes the (often
            larger) noise of which rows land in which part. Both candidates still share each split.
        overrides: ``"section.key=value"`` settings applied to both configs (the CLI's ``--set``).
        workers: run seeds in this many processes (spawned; callables must be picklable, i.e.
            defined at module level).
        tracker: where to record one MLflow parent run for the comparison and one child run per
            candidate and seed. ``"auto"`` (default) follows the ``[tracking]`` section of A's config,
            as ``cleanfit train`` does (callables alone are not tracked); None turns tracking off;
            ``"mlflow"`` or a :class:`cleanfit.MLflowTracker` picks the store. The single training runs
            themselves are not tracked separately.
        progress: print one line per finished run to stderr.

    Returns:
        A :class:`Comparison` with per-seed scores, the paired differences ``b - a``, their 95%
        paired t interval and ``verdict`` (``"a"``, ``"b"`` or ``"tie"`` when the interval contains 0),
        the seeds a difference of the measured size would need, and notes on what else limits it.

    Raises:
        ConfigError: fewer than 2 seeds; configs that predict different targets, tasks or data files;
            a metric the runs do not have; a callable that cannot go to a worker process.
        DataError: a callable returned something that is not a finite number.
    """
    seed_list = _seed_list(seeds)
    if higher_is_better is not None and not is_flag(higher_is_better):
        raise ConfigError(f"compare(higher_is_better={higher_is_better!r}): pass True, False or None "
                          "(None reads the direction from the metric's name)")
    _check_options(split, workers)
    cand_a, cand_b = _candidate("a", a, overrides), _candidate("b", b, overrides)
    _check_candidates(cand_a, cand_b, workers)
    log = _start_log(tracker, cand_a, cand_b, {
        "candidate_a": cand_a.name, "candidate_b": cand_b.name, "seeds": list(seed_list),
        "metric_requested": metric or "the task's main metric", "split": split, "vary_split": vary_split,
        "overrides": list(overrides), "workers": workers,
    })
    comparison: Comparison | None = None
    try:
        picked, outcomes = _run_and_score((cand_a, cand_b), seed_list, metric, split, vary_split, workers,
                                          progress, log)
        comparison = _comparison(cand_a, cand_b, seed_list, picked, higher_is_better, vary_split, log)
        comparison = _with_context(comparison, cand_a, cand_b, outcomes, split, vary_split)
    finally:
        if log:
            log.finish(comparison)
    return comparison


def _check_options(split: str, workers: int) -> None:
    if split not in ("val", "test"):
        raise ConfigError(f"compare(split={split!r}): expected 'val' or 'test'")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"compare(workers={workers!r}): expected a whole number of processes, 1 or more")


def _check_candidates(a: _Candidate, b: _Candidate, workers: int) -> None:
    """Raise before anything runs: two configs for different problems, or a callable no worker can receive."""
    if a.config is not None and b.config is not None:
        _check_same_problem(a, b)
    if workers > 1:
        for cand in (a, b):
            _check_picklable(cand, workers)


def _start_log(tracker: Any, a: _Candidate, b: _Candidate, settings: dict[str, Any]) -> ComparisonLog | None:
    """The MLflow parent run of this comparison, started; None when it is not tracked."""
    target = resolve_target(tracker, a.config or b.config)
    if not target:
        return None
    log = ComparisonLog(*target)
    log.start(f"compare {a.name} vs {b.name}", settings)
    return log


def _run_and_score(cands: tuple[_Candidate, _Candidate], seeds: Sequence[int], metric: str | None, split: str,
                   vary_split: bool, workers: int, progress: bool,
                   log: ComparisonLog | None) -> tuple[dict[tuple[str, int], tuple[str, float]],
                                                       dict[tuple[str, int], _Outcome]]:
    """Run every candidate at every seed; ``(label, seed) -> (metric name, score)`` and the outcomes.
    Each finished run is printed (with ``progress``) and logged as a child run as it comes in."""
    outcomes: dict[tuple[str, int], _Outcome] = {}
    picked: dict[tuple[str, int], tuple[str, float]] = {}
    for cand, seed, outcome in run_all(cands, seeds, vary_split, workers):
        name, value = _score(cand, seed, outcome, metric, split)
        outcomes[cand.label, seed] = outcome
        picked[cand.label, seed] = name, value
        if progress:
            print(f"compare: {cand.label} ({cand.name}) seed {seed}: {name} = {value:.6g}", file=sys.stderr)
        if log:
            params = {**cand.params, "train.seed": seed, **({"split.seed": seed} if vary_split else {})}
            log.child(cand.label, cand.name, seed, {**outcome.metrics, name: value},
                      {**params, **outcome.info} if cand.config is not None else {})
    _check_same_task(*cands, outcomes)
    return picked, outcomes


def _comparison(a: _Candidate, b: _Candidate, seeds: Sequence[int], picked: Mapping[tuple[str, int], tuple[str, float]],
                higher_is_better: bool | None, vary_split: bool, log: ComparisonLog | None) -> Comparison:
    """The :class:`Comparison` of the picked scores; the metric's name gives the direction unless told."""
    metric_name = picked["a", seeds[0]][0]
    if higher_is_better is None:
        higher_is_better = not any(word in metric_name.lower() for word in _LOWER_IS_BETTER)
    return Comparison(
        tuple(seeds),
        [picked["a", s][1] for s in seeds],
        [picked["b", s][1] for s in seeds],
        metric=metric_name,
        higher_is_better=bool(higher_is_better),
        names=(a.name, b.name),
        vary_split=vary_split,
        run_id=log.run_id if log else None,
    )


# ---------------------------------------------------------------------------------- candidates


def _seed_list(seeds: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, bool):
        raise ConfigError(f"compare(seeds={seeds!r}): expected a number of seeds (2 or more) or a list of seeds")
    if isinstance(seeds, numbers.Integral):
        out = tuple(range(int(seeds)))
    elif isinstance(seeds, Sequence) and not isinstance(seeds, str) and all(is_int(s) for s in seeds):
        bad = [s for s in seeds if not is_seed(s)]
        if bad:
            raise ConfigError(f"compare(seeds={list(seeds)!r}): seed {bad[0]!r} is not in [0, 2**32); give seeds in that range")
        out = tuple(int(s) for s in seeds)
        if len(set(out)) != len(out):
            raise ConfigError(f"compare(seeds={list(seeds)!r}): seeds repeat; give distinct seeds")
    else:
        raise ConfigError(f"compare(seeds={seeds!r}): expected a number of seeds (2 or more) or a list of integer seeds")
    if len(out) < 2:
        raise ConfigError(
            f"compare(seeds={seeds!r}): a comparison needs at least 2 seeds to see seed-to-seed noise; "
            "use 5 or more (--seeds N)"
        )
    return out


def _candidate(label: str, source: Any, overrides: Sequence[str]) -> _Candidate:
    if isinstance(source, (str, Path, Mapping)):
        try:
            config = load_config(source, overrides)
        except ConfigError as exc:
            if isinstance(source, Mapping):
                raise ConfigError(f"candidate {label}: {exc}") from None
            raise
        name = Path(source).name if not isinstance(source, Mapping) else f"config {label}"
        return _Candidate(label, name, config=config, params=config.flat())
    if callable(source):
        if not takes_args(source, 1):
            raise ConfigError(f"compare: candidate {label} ({_callable_name(source)}) cannot be called with a "
                              "seed; write it as candidate(seed) -> score, e.g. def a(seed): ... return val_accuracy")
        return _Candidate(label, _callable_name(source), fn=source)
    raise ConfigError(
        f"compare: candidate {label} is a {type(source).__name__}; expected a TOML config path, "
        "a config dict or a callable candidate(seed) -> score"
    )


def _callable_name(fn: Callable[..., Any]) -> str:
    while isinstance(fn, partial):
        fn = fn.func
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _check_same_problem(a: _Candidate, b: _Candidate) -> None:
    da, db = a.config.data, b.config.data  # type: ignore[union-attr]
    tasks = {da.task, db.task} - {"auto"}
    if Path(da.path).resolve() != Path(db.path).resolve() or da.target != db.target or len(tasks) > 1:
        def what(c: _Candidate, d: DataConfig) -> str:
            task = "" if d.task == "auto" else f" ({d.task})"
            return f"{c.label} ({c.name}) predicts {d.target!r}{task} from {d.path}"
        raise ConfigError(
            f"cannot compare: {what(a, da)} but {what(b, db)}; a comparison needs both configs to "
            "predict the same target of the same data file; fix [data] in one of them"
        )


def _check_same_task(a: _Candidate, b: _Candidate, outcomes: Mapping[tuple[str, int], _Outcome]) -> None:
    tasks = {label: out.task for (label, _), out in outcomes.items()}
    if a.config is not None and b.config is not None and tasks["a"] != tasks["b"]:
        raise ConfigError(
            f"cannot compare: a ({a.name}) trains a {tasks['a']} model but b ({b.name}) a {tasks['b']} "
            "one; set the same data.task in both configs"
        )


def _check_picklable(cand: _Candidate, workers: int) -> None:
    if cand.fn is None:
        return
    try:
        pickle.dumps(cand.fn)
    except Exception as exc:  # pickling raises several types (PicklingError, AttributeError, TypeError)
        raise ConfigError(
            f"compare(workers={workers}): candidate {cand.label} ({cand.name}) cannot be sent to a worker "
            f"process ({type(exc).__name__}: {exc}); define it at module level (not a lambda or a local "
            "function), or use workers=1"
        ) from None


def _score(cand: _Candidate, seed: int, outcome: _Outcome, metric: str | None, split: str) -> tuple[str, float]:
    """The (metric name, score) of one run; raises for a bad callable result or a missing metric."""
    if cand.fn is not None:
        return metric or "score", _as_score(cand, seed, outcome.value)
    name = metric or f"{split}_{_DEFAULT_METRIC.get(outcome.task or '', 'loss')}"
    for key in (name, f"{split}_{name}"):
        if key in outcome.metrics:
            value = outcome.metrics[key]
            if not math.isfinite(value):
                raise DataError(f"candidate {cand.label} ({cand.name}), seed {seed}: {key} is {value}; "
                                "the run did not produce a usable score (see its training log)")
            return key, value
    hint = " (set split.val > 0 in the config for validation metrics)" if split == "val" else ""
    raise ConfigError(
        f"compare(metric={name!r}): candidate {cand.label} ({cand.name}) has no such metric; "
        f"it has {', '.join(sorted(outcome.metrics)) or 'none'}{hint}"
    )


def _as_score(cand: _Candidate, seed: int, value: Any) -> float:
    where = f"candidate {cand.label} ({cand.name}) returned {value!r} for seed {seed}"
    if isinstance(value, (bool, str, bytes)) or not (isinstance(value, numbers.Real) or hasattr(value, "__float__")):
        raise DataError(f"{where}; a candidate must return one number (its score) per seed")
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}; a candidate must return one number (its score) per seed") from None
    if not math.isfinite(score):
        raise DataError(f"{where}; a score must be finite (a diverged run has no score: fix the run)")
    return score


def _with_context(c: Comparison, a: _Candidate, b: _Candidate, outcomes: Mapping[tuple[str, int], _Outcome],
                  split: str, vary_split: bool) -> Comparison:
    """The comparison with what limits it: the rows the metric was measured on, the fixed split's seed."""
    rows = {out.info.get(f"rows.{split}") for out in outcomes.values()} - {None}
    split_seed = None
    if a.config is not None and b.config is not None and not vary_split and a.config.split.seed == b.config.split.seed:
        split_seed = a.config.split.seed
    if not rows and split_seed is None:
        return c
    return dataclasses.replace(c, eval_rows=min(rows) if rows else None, split_seed=split_seed)
