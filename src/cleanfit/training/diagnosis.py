"""Read a loss curve the way an experienced practitioner would, and say what it shows.

Each check looks at the per-epoch rows of a :class:`~cleanfit.training.history.History` (and the
logged optimizer steps where the epochs are too few) and returns a :class:`~cleanfit.findings.Finding`
with the evidence (epochs, values) and plain advice. The thresholds were tuned on real runs
(tests/test_history.py trains a too-high learning rate that diverges, a tiny one that stays flat, a
big model on a tiny dataset, a leaky feature) and a healthy run yields no finding.

What the caller knows sharpens the reading: ``advice`` (:class:`~cleanfit.training.advice.Advice`) words
the hints for Python or for a config and leaves out what the run already does; ``audit`` (the run's own
:class:`~cleanfit.AuditReport`) and ``baseline`` (scores of a simple model on the same split) let a near
perfect score be an ``info`` when the audit found no leak and the simple model is about as good.

>>> from cleanfit.training.history import History
>>> h = History([{"epoch": e, "train_loss": t, "val_loss": v}
...              for e, t, v in [(1, 1.0, 1.0), (2, 0.6, 0.7), (3, 0.4, 0.6), (4, 0.3, 0.7), (5, 0.2, 0.8)]])
>>> [(f.check, f.details["turned_at_epoch"]) for f in h.diagnose()]
[('overfitting', 3)]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cleanfit.findings import Finding
from cleanfit.training.advice import Advice

if TYPE_CHECKING:
    from cleanfit.training.history import History

# Thresholds (see the module docstring for how they were chosen).
DIVERGE_ABOVE_START = 0.1  # final train loss 10% above where it started: diverging
FLAT_MIN_DROP = 0.01  # train loss fell by less than 1% of where it started: flat
OVERFIT_RISE = 0.10  # val loss ended 10% above its best, 2+ epochs after it, while train kept falling ...
OVERFIT_ROUGHNESS = 3.0  # ... and climbed rather than swung: its path at most 3x its net rise
UNSTABLE_JUMP = 0.10  # a spike: a value 10% above both its neighbours ...
UNSTABLE_SPAN = 0.25  # ... by at least a quarter of the curve's whole range
UNSTABLE_ROUGHNESS = 3.0  # an epoch curve travelling 3x its range up and down: unstable
UNSTABLE_SPIKES = 2  # this many spikes in the epoch curve: unstable
UNSTABLE_BLOWUP = 3.0  # a logged step loss 3x where training started: unstable (it nearly diverged)
TOO_GOOD_RATIO = 0.5  # late val loss below half the train loss
# a late val score at least this high is near perfect (a leaked target gives 99%+ accuracy even next to
# strong honest features; AUC is held to a higher bar because 0.99 is common on easy honest data)
TOO_GOOD_SCORES = {"val_accuracy": 0.99, "val_auc": 0.999, "val_r2": 0.99}
# the network is "far above" a simple baseline when it beats it by more than this (then a near perfect
# score stays a warning even after a clean audit: a leak the audit cannot see, e.g. in a combination of columns)
FAR_ABOVE_BASELINE = {"val_accuracy": 0.02, "val_auc": 0.01, "val_r2": 0.02}
# audit checks whose warning or critical finding is a leak that can make a score too good
LEAK_CHECKS = ("duplicates", "near-duplicates", "target-leakage", "temporal", "group", "preprocessing", "identifier")


def diagnose(history: History, *, audit: Any = None, baseline: Mapping[str, float] | None = None,
             advice: Advice | None = None) -> list[Finding]:
    """All findings for ``history``, most severe first (empty for a healthy curve).

    ``audit``: the run's own audit report (anything with ``.passed`` and ``.findings``); ``baseline``:
    ``{"val_accuracy": ..., "val_auc": ...}`` (or ``val_r2``) of a simple model on the same split;
    ``advice``: how to word the hints (default: for Python, knowing nothing of the run's settings).
    """
    advice = advice or Advice()
    train = _values(history.epochs, "train_loss")
    early = _starting_loss(history, train)
    findings = [f for f in (_diverging(history, train, early, advice),) if f is not None]
    if not findings:  # a diverged run is not also flat, unstable or overfitting: one cause, one advice
        for check in (_flat(history, train, early, advice), _overfitting(history, train, advice),
                      _unstable(history, train, early, advice)):
            if check is not None:
                findings.append(check)
    too_good = _too_good(history, train, advice)
    if too_good is not None and audit is not None:
        too_good = _weighed(too_good, audit, baseline or {}, advice)
    if too_good is not None:
        findings.append(too_good)
    return findings


def _values(rows: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(epoch, value) pairs where ``key`` has a number."""
    out = []
    for i, row in enumerate(rows):
        value = row.get(key)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            out.append((int(row.get("epoch", i + 1)), float(value)))
    return out


def _starting_loss(history: History, train: list[tuple[int, float]]) -> float | None:
    """Where the train loss started: the first logged steps (the first epoch's mean hides fast progress)."""
    for row in history.steps[:1]:
        value = row.get("train_loss")
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return train[0][1] if train and math.isfinite(train[0][1]) else None


def _diverging(history: History, train: list[tuple[int, float]], early: float | None,
               advice: Advice) -> Finding | None:
    for key, rows, unit in (("train_loss", history.steps, "step"), ("train_loss", history.epochs, "epoch"),
                            ("val_loss", history.epochs, "epoch")):
        for row in rows:
            value = row.get(key)
            if isinstance(value, numbers.Real) and not math.isfinite(value):
                value = float(value)
                where = f"epoch {row.get('epoch')}"
                where = where if unit == "epoch" else f"step {row.get('step')} ({where})"
                return Finding(
                    "diverging", "critical",
                    f"The {key.replace('_', ' ')} became {value} at {where}: training "
                    f"diverged. The learning rate is most likely too high: {advice.calm_down()}, and check the "
                    "inputs for NaN/inf values.",
                    {"epoch": row.get("epoch"), "step": row.get("step"), "key": key, "value": str(value)},
                )
    if len(train) < 2 or early is None:
        return None
    best_epoch, best = min(train, key=lambda p: p[1])
    last_epoch, last = train[-1]
    if last - early > DIVERGE_ABOVE_START * abs(early):  # abs: a loss may be negative (a log-likelihood)
        return Finding(
            "diverging", "critical",
            f"The train loss ended at {last:.4g} (epoch {last_epoch}), above where it started ({early:.4g}; best "
            f"{best:.4g} at epoch {best_epoch}): the model got worse than its initialisation, so training diverged. "
            f"The learning rate is most likely too high: {advice.calm_down()}.",
            {"best_epoch": best_epoch, "best_train_loss": best, "last_epoch": last_epoch,
             "last_train_loss": last, "start_train_loss": early},
        )
    return None


def _flat(history: History, train: list[tuple[int, float]], early: float | None, advice: Advice) -> Finding | None:
    if len(train) < 3 or early is None or early == 0:
        return None
    best = min(v for _, v in train)
    drop = (early - best) / abs(early)
    if drop >= FLAT_MIN_DROP:
        return None
    return Finding(
        "flat", "warning",
        f"The train loss barely moved in {len(train)} epochs: from {early:.4g} at the start to {train[-1][1]:.4g} "
        f"(best {best:.4g}, a {100 * drop:.2f}% drop). The learning rate is probably too low ({advice.raise_lr()}), or "
        "the model does not learn at all: check that the optimizer holds the model's parameters, that none are "
        "frozen by mistake, and that the targets match the loss.",
        {"epochs": len(train), "start_train_loss": early, "best_train_loss": best, "relative_drop": drop},
    )


def _overfitting(history: History, train: list[tuple[int, float]], advice: Advice) -> Finding | None:
    val = _values(history.epochs, "val_loss")
    if len(val) < 4 or len(train) < 4:
        return None
    best_index = min(range(len(val)), key=lambda i: val[i][1])
    turned_at, best = val[best_index]
    after = [v for _, v in val[best_index + 1:]]
    if len(after) < 2 or val[-1][1] - best <= OVERFIT_RISE * abs(best):
        return None
    path = sum(abs(b - a) for a, b in zip([best] + after, after))
    if path > OVERFIT_ROUGHNESS * (val[-1][1] - best):
        return None  # val swings up and down rather than climbing: an unstable run, not overfitting
    train_at_turn = dict(train).get(turned_at)
    if train_at_turn is None or train[-1][1] >= train_at_turn:
        return None  # train loss is not falling any more: not the overfitting pattern
    return Finding(
        "overfitting", "warning",
        f"Validation loss was lowest at epoch {turned_at} ({best:.4g}) and rose to {val[-1][1]:.4g} by epoch "
        f"{val[-1][0]}, while the train loss kept falling ({train_at_turn:.4g} -> {train[-1][1]:.4g}): the model "
        f"is overfitting. {_capital(advice.stop_early(turned_at))}; {advice.regularise()} or get more "
        "training data.",
        {"turned_at_epoch": turned_at, "best_val_loss": best, "last_val_loss": val[-1][1],
         "train_loss_at_turn": train_at_turn, "last_train_loss": train[-1][1]},
    )


def _unstable(history: History, train: list[tuple[int, float]], early: float | None,
              advice: Advice) -> Finding | None:
    for key, points in (("train loss", train), ("val loss", _values(history.epochs, "val_loss"))):
        spikes = _spikes(points)
        roughness = _roughness([v for _, v in points]) if len(points) >= 5 else 1.0
        if len(spikes) >= UNSTABLE_SPIKES or roughness >= UNSTABLE_ROUGHNESS:
            shown = ", ".join(f"{b:.3g} -> {p:.3g} -> {a:.3g} at epoch {at}" for at, b, p, a in spikes[:3])
            return Finding(
                "unstable", "warning",
                f"The {key} oscillates: it travels {roughness:.1f}x its range up and down"
                + (f", with {len(spikes)} spikes ({shown})" if spikes else "")
                + ". Large oscillations usually mean the learning rate is too high for this batch size: "
                f"{_either_more(advice.calm_down(), advice.larger_batch())}.",
                {"series": key, "spikes": len(spikes), "roughness": roughness,
                 "values": [v for _, v in points],
                 "examples": [{"epoch": at, "before": b, "peak": p, "after": a} for at, b, p, a in spikes[:10]]},
            )
    steps = [(s.get("step"), float(s["train_loss"])) for s in history.steps[1:]
             if isinstance(s.get("train_loss"), (int, float))]
    if early is not None and early > 0 and steps:
        at, peak = max(steps, key=lambda p: p[1])
        if peak > UNSTABLE_BLOWUP * early:
            return Finding(
                "unstable", "warning",
                f"The train loss blew up to {peak:.4g} at step {at}, {peak / early:.0f}x where it started "
                f"({early:.4g}), before coming back down: the learning rate is too high (a few steps away from "
                f"diverging): {advice.calm_down()}.",
                {"step": at, "peak_train_loss": peak, "start_train_loss": early},
            )
    return None


def _roughness(values: list[float]) -> float:
    """How far a curve travels, over its range: 1 for a monotone curve, large when it swings back and forth.

    >>> _roughness([1.0, 0.5, 0.2]), _roughness([1.0, 0.0, 1.0, 0.0])
    (1.0, 3.0)
    """
    span = max(values) - min(values)
    if span <= 0:
        return 1.0
    return sum(abs(b - a) for a, b in zip(values, values[1:])) / span


def _spikes(points: list[tuple[int, float]]) -> list[tuple[int, float, float, float]]:
    """Points well above both neighbours: a rise and a fall back, each a real part of the curve's range
    (noise near the floor is not a spike; a steady rise or fall has none)."""
    if len(points) < 5:
        return []
    values = [v for _, v in points]
    span = max(values) - min(values)
    found = []
    for i in range(1, len(points) - 1):
        before, value, after = values[i - 1], values[i], values[i + 1]
        top = max(before, after)
        if value - top > UNSTABLE_JUMP * abs(top) and value - top > UNSTABLE_SPAN * span:
            found.append((points[i][0], before, value, after))
    return found


def _too_good(history: History, train: list[tuple[int, float]], advice: Advice) -> Finding | None:
    late = history.epochs[len(history.epochs) - max(1, len(history.epochs) // 3):]
    for key, threshold in TOO_GOOD_SCORES.items():
        scores = [row[key] for row in late if isinstance(row.get(key), (int, float))]
        if scores and min(scores) >= threshold:
            return Finding(
                "too-good", "warning",
                f"{key} is {scores[-1]:.4g} in the last epochs: near perfect. Results this good usually mean "
                "the validation data leaks into training (duplicates, a feature that encodes the target, "
                f"preprocessing fit on all rows, future data in a time series). {_capital(advice.audit())} before "
                "trusting it.",
                {"metric": key, "value": scores[-1], "epochs": [row.get("epoch") for row in late]},
            )
    pairs = [(row.get("epoch"), row["train_loss"], row["val_loss"]) for row in late
             if isinstance(row.get("train_loss"), (int, float)) and isinstance(row.get("val_loss"), (int, float))]
    if pairs and len(history.epochs) >= 3 and all(0 < t and v < TOO_GOOD_RATIO * t for _, t, v in pairs):
        epoch, t, v = pairs[-1]
        return Finding(
            "too-good", "warning",
            f"Late in training the validation loss stays far below the train loss ({v:.4g} vs {t:.4g} at epoch "
            f"{epoch}). Dropout and augmentation make val a little lower early on, but not this much this late: "
            "suspect leakage first (validation rows duplicated in train, a leaky feature, preprocessing fit on "
            f"all rows) and {advice.audit()}.",
            {"epochs": [p[0] for p in pairs], "train_loss": [p[1] for p in pairs], "val_loss": [p[2] for p in pairs]},
        )
    return None


def _weighed(finding: Finding, audit: Any, baseline: Mapping[str, float], advice: Advice) -> Finding:
    """A too-good finding read beside the run's audit and a simple baseline on the same split."""
    leaks = [f for f in getattr(audit, "findings", []) if f.check in LEAK_CHECKS and f.severity != "info"]
    metric, value = finding.details.get("metric"), finding.details.get("value")
    if leaks or not getattr(audit, "passed", False):
        named = ", ".join(sorted({f.check for f in leaks})) or "a critical finding"
        return Finding("too-good", "warning", f"{finding.message} The run's audit found {named}: "
                       f"{' '.join(leaks[0].message.split()) if leaks else 'see the report'}",
                       {**finding.details, "audit_findings": [f.check for f in leaks]})
    base = baseline.get(metric) if metric else None
    if base is None or value is None:
        return Finding("too-good", "warning", f"{finding.message} (The audit found no leak, but there is no "
                       "baseline on the same split to tell an easy table from a leak the audit cannot see.)",
                       dict(finding.details))
    details = {**finding.details, "baseline": float(base), "audit_passed": True}
    if value - base > FAR_ABOVE_BASELINE.get(metric, 0.02):
        return Finding(
            "too-good", "warning",
            f"{metric} is {value:.4g}: near perfect, and far above a simple baseline (a linear model on the same "
            f"preprocessed train rows reaches {base:.4g} on the same split). The audit found no leak, so suspect "
            f"one it cannot see (several columns that together encode the target, an ID-like order): "
            f"{advice.audit()} with impact, and check how the data was collected.", details)
    return Finding(
        "too-good", "info",
        f"{metric} is {value:.4g}: near perfect, but the audit found no leak; a simple baseline (a linear model "
        f"on the same preprocessed train rows) reaches {base:.4g} on the same split, so this table is this easy.",
        details)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _either_more(first: str, extra: str) -> str:
    """``a, b or c`` extended by one more option: ``a, b, c or extra``."""
    head, sep, last = first.rpartition(" or ")
    return f"{head}, {last} or {extra}" if sep else f"{first} or {extra}"
