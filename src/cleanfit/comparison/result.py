"""The result of :func:`cleanfit.comparison.compare`: paired per-seed scores, the interval, the verdict.

The verdict is the paired t-test's (see :mod:`cleanfit.comparison.stats` for why), and the interval
shown is the one it uses. :attr:`Comparison.notes` says what else limits the comparison: few seeds,
a small validation set whose accuracy moves in coarse steps, a split that was never varied.

Re-exported as :class:`cleanfit.Comparison` (from :mod:`cleanfit.comparison.compare`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cleanfit._util.files import write_atomic
from cleanfit.comparison import stats as _stats

Verdict = _stats.Verdict

# below this many seeds the comparison says how large a difference it can find at all
_FEW_SEEDS = 10
# a mean accuracy difference within this many steps of 1 / eval_rows gets a note
_STEPS = 3


@dataclass(frozen=True, eq=False)
class Comparison:
    """Scores of candidates A and B on the same seeds, and what they say.

    The paired difference is always ``b - a`` (seed by seed), whatever the direction of the metric:
    with an accuracy, a positive difference means B did better; with a loss, B did better when it is
    negative. ``verdict`` reads it the right way round: ``"b"`` when the whole 95% paired t
    interval of the mean difference favours B, ``"a"`` when it favours A, ``"tie"`` when it contains 0.
    Two equally good candidates get a winner at most 5% of the time at any number of seeds; with few
    seeds the honest answer is mostly ``"tie"``, and ``seeds_needed`` says how many would resolve a
    difference of this size.

    ``eval_rows`` (the rows the metric was measured on) and ``split_seed`` (the split every seed shared,
    None when it was varied or unknown) only feed :attr:`notes`.

    >>> c = Comparison([0, 1, 2, 3], [0.80, 0.82, 0.79, 0.81], [0.84, 0.85, 0.83, 0.86], metric="val_accuracy")
    >>> c.verdict, round(c.mean_difference, 4)
    ('b', 0.04)
    >>> c.differences.round(4).tolist()
    [0.04, 0.03, 0.04, 0.05]
    """

    seeds: Sequence[int]
    scores_a: Sequence[float]
    scores_b: Sequence[float]
    metric: str = "score"
    higher_is_better: bool = True
    names: tuple[str, str] = ("a", "b")
    vary_split: bool = False
    run_id: str | None = None
    eval_rows: int | None = None
    split_seed: int | None = None
    ci: tuple[float, float] = field(init=False)
    p_value: float = field(init=False)
    verdict: Verdict = field(init=False)
    seeds_needed: int | None = field(init=False)

    def __post_init__(self) -> None:
        seeds = tuple(int(s) for s in self.seeds)
        a = np.asarray(self.scores_a, dtype=np.float64)
        b = np.asarray(self.scores_b, dtype=np.float64)
        if not (len(seeds) == a.size == b.size) or a.ndim != 1 or b.ndim != 1:
            raise ValueError(f"need one score per seed for A and B, got {len(seeds)} seeds, {a.size} and {b.size} scores")
        if len(seeds) < 2:
            raise ValueError(f"need at least 2 seeds, got {len(seeds)}")
        a.flags.writeable = False
        b.flags.writeable = False
        set_ = object.__setattr__
        set_(self, "seeds", seeds)
        set_(self, "scores_a", a)
        set_(self, "scores_b", b)
        d = self.differences
        low, high = _stats.t_interval(d)
        set_(self, "ci", (low, high))
        set_(self, "p_value", _stats.p_value(d))
        set_(self, "verdict", _stats.verdict_of(low, high, higher_is_better=self.higher_is_better))
        set_(self, "seeds_needed", _stats.seeds_needed(float(d.mean()), _std(d)))

    # ------------------------------------------------------------------ numbers
    @property
    def differences(self) -> np.ndarray:
        """Per-seed ``b - a``."""
        return np.asarray(self.scores_b) - np.asarray(self.scores_a)

    @property
    def mean_a(self) -> float:
        return float(np.mean(self.scores_a))

    @property
    def mean_b(self) -> float:
        return float(np.mean(self.scores_b))

    @property
    def std_a(self) -> float:
        """Sample standard deviation (``ddof=1``) of A's scores over seeds."""
        return _std(self.scores_a)

    @property
    def std_b(self) -> float:
        return _std(self.scores_b)

    @property
    def mean_difference(self) -> float:
        """Mean of ``b - a`` over seeds."""
        return float(self.differences.mean())

    @property
    def std_difference(self) -> float:
        return _std(self.differences)

    @property
    def confidence(self) -> float:
        return _stats.CONFIDENCE

    @property
    def notes(self) -> list[str]:
        """What else limits the comparison (empty when nothing does): few seeds, coarse metric steps,
        a split that was never varied.

        >>> c = Comparison(range(3), [0.8, 0.82, 0.81], [0.83, 0.8, 0.84], metric="val_accuracy", eval_rows=35)
        >>> print(c.notes[1])
        the val_accuracy is measured on 35 rows, so it moves in steps of 1/35 = 0.029; the mean difference (+0.013) is within 3 such steps: a few rows decide it, and more validation rows (split.val) tell more than more seeds
        """
        return [note for note in (self._seeds_note(), self._steps_note(), self._split_note()) if note]

    def _seeds_note(self) -> str | None:
        n = len(self.seeds)
        if n >= _FEW_SEEDS:
            return None
        effect = _stats.smallest_effect(n)
        return (f"with {n} seeds the test finds a difference {_stats.POWER:.0%} of the time only when it is "
                f"{effect:.2g}x the seed-to-seed spread of the differences or more (at {_FEW_SEEDS} seeds: "
                f"{_stats.smallest_effect(_FEW_SEEDS):.2g}x); a tie on few seeds is no evidence of equality")

    def _steps_note(self) -> str | None:
        if not self.eval_rows or "accuracy" not in self.metric.lower():
            return None
        step = 1.0 / self.eval_rows
        if abs(self.mean_difference) > _STEPS * step:
            return None
        part = self.metric.split("_")[0] if "_" in self.metric else "evaluation"
        more = "more validation rows (split.val)" if part == "val" else f"more {part} rows"
        return (f"the {self.metric} is measured on {self.eval_rows} rows, so it moves in steps of "
                f"1/{self.eval_rows} = {step:.2g}; the mean difference ({self.mean_difference:+.2g}) is within "
                f"{_STEPS} such steps: a few rows decide it, and {more} tell more than more seeds")

    def _split_note(self) -> str | None:
        if self.split_seed is None or self.vary_split:
            return None
        return (f"every seed used the same split (split.seed = {self.split_seed}), so the verdict holds for "
                "these rows only; --vary-split (vary_split=True) includes the noise of which rows are held out")

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-friendly values (what ``cleanfit compare --json`` writes)."""
        d = self.differences
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "candidates": {"a": self.names[0], "b": self.names[1]},
            "seeds": list(self.seeds),
            "vary_split": self.vary_split,
            "split_seed": self.split_seed,
            "eval_rows": self.eval_rows,
            "scores": {"a": self.scores_a.tolist(), "b": self.scores_b.tolist()},
            "per_seed": [
                {"seed": s, "a": float(x), "b": float(y), "difference": float(z)}
                for s, x, y, z in zip(self.seeds, self.scores_a, self.scores_b, d)
            ],
            "mean": {"a": self.mean_a, "b": self.mean_b},
            "std": {"a": self.std_a, "b": self.std_b},
            "difference": {
                "definition": "b - a",
                "mean": self.mean_difference,
                "std": self.std_difference,
                "ci": list(self.ci),
                "confidence": self.confidence,
                "method": _stats.INTERVAL_METHOD,
                "p_value": self.p_value,
            },
            "verdict": self.verdict,
            "seeds_needed": self.seeds_needed,
            "power": {"power": _stats.POWER, "alpha": _stats.ALPHA, "test": "paired t"},
            "notes": self.notes,
            "run_id": self.run_id,
        }

    def summary(self) -> str:
        """The verdict as one sentence."""
        a, b = self.names
        level = f"{self.confidence:.0%}"
        low, high = self.ci
        interval = f"{level} interval of mean(b - a) [{low:+.4g}, {high:+.4g}]"
        if self.verdict == "tie":
            need = self._needed_text()
            return f"tie: the {interval} contains 0, so neither is better on {len(self.seeds)} seeds; {need}"
        winner, loser = (b, a) if self.verdict == "b" else (a, b)
        return f"{self.verdict}: {winner} beats {loser} on {self.metric}; the {interval} excludes 0"

    def _needed_text(self) -> str:
        if self.seeds_needed is None:
            return "the scores are identical seed by seed, so more seeds would not separate them"
        return (
            f"about {self.seeds_needed} seeds would resolve a difference of this size "
            f"({_stats.POWER:.0%} power, paired t-test, alpha {_stats.ALPHA})"
        )

    def __str__(self) -> str:
        a, b = self.names
        better = "higher" if self.higher_is_better else "lower"
        head = [f"cleanfit compare: {self.metric} ({better} is better), {len(self.seeds)} paired seeds"
                + (" (split seed varied too)" if self.vary_split else "")]
        rows = [("seed", f"a: {a}", f"b: {b}", "b - a")]
        for s, x, y, z in zip(self.seeds, self.scores_a, self.scores_b, self.differences):
            rows.append((str(s), f"{x:.4f}", f"{y:.4f}", f"{z:+.4f}"))
        rows.append(("mean ± std", f"{self.mean_a:.4f} ± {self.std_a:.4f}",
                     f"{self.mean_b:.4f} ± {self.std_b:.4f}",
                     f"{self.mean_difference:+.4f} ± {self.std_difference:.4f}"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
        low, high = self.ci
        tail = [
            f"{self.confidence:.0%} interval of mean(b - a): [{low:+.4f}, {high:+.4f}] "
            f"({_stats.INTERVAL_METHOD}, p = {self.p_value:.3g}; the verdict reads this interval)",
        ]
        if self.verdict == "tie":
            tail.append(f"verdict: tie (the interval contains 0: neither is shown better on {len(self.seeds)} seeds)")
            tail.append(self._needed_text()[0].upper() + self._needed_text()[1:])
        else:
            winner, loser = (b, a) if self.verdict == "b" else (a, b)
            tail.append(f"verdict: {self.verdict} ({winner} beats {loser}: the interval excludes 0)")
            tail.append(f"Seeds needed for a difference of this size: {self.seeds_needed} "
                        f"({_stats.POWER:.0%} power, paired t-test, alpha {_stats.ALPHA})")
        tail.extend(f"note: {note}" for note in self.notes)
        return "\n".join(head + lines + tail)

    def plot(self, path: str | Path) -> Path:
        """Save a per-seed paired plot (one line from A's to B's score per seed) as an image at ``path``."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig = Figure(figsize=(5.5, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        sign = 1.0 if self.higher_is_better else -1.0
        for s, x, y in zip(self.seeds, self.scores_a, self.scores_b):
            color = "#2a9d55" if sign * (y - x) > 0 else "#c0392b" if sign * (y - x) < 0 else "#888888"
            ax.plot([0, 1], [x, y], color=color, alpha=0.6, marker="o", markersize=4, linewidth=1)
            ax.annotate(str(s), (1, y), xytext=(4, 0), textcoords="offset points", fontsize=7,
                        va="center", color="#555555")
        for pos, mean, std in ((0, self.mean_a, self.std_a), (1, self.mean_b, self.std_b)):
            ax.errorbar([pos + (-0.08 if pos == 0 else 0.08)], [mean], yerr=[std], fmt="s",
                        color="black", capsize=4, markersize=6)
        a, b = self.names
        ax.set_xticks([0, 1], [f"A: {a}", f"B: {b}"])
        ax.set_xlim(-0.35, 1.35)
        ax.set_ylabel(self.metric + ("" if self.higher_is_better else " (lower is better)"))
        low, high = self.ci
        ax.set_title(f"verdict: {self.verdict}  |  mean(b - a) = {self.mean_difference:+.4g}, "
                     f"{self.confidence:.0%} CI [{low:+.4g}, {high:+.4g}]", fontsize=9)
        ax.set_xlabel("one line per seed (green: B better, red: A better); squares: mean ± std", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        image = io.BytesIO()
        fig.savefig(image, dpi=120, format=path.suffix.lstrip(".") or "png")
        write_atomic(path, image.getvalue())
        return path


def _std(values: Sequence[float] | np.ndarray) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1)) if v.size > 1 else math.nan
