"""Is a run reproducible? Compare two runs' final weights, metrics and step-by-step history.

>>> same_value(float("nan"), float("nan")), same_value(0.1, 0.1), same_value(1.0, 1.0000001)
(True, True, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ReproVerdict:
    """The outcome of :func:`compare_runs`: identical or not, and where they first part ways."""

    identical: bool
    weights_identical: bool
    metrics_identical: bool
    n_tensors: int
    n_steps: int
    first_step: dict[str, Any] | None = None  # the first logged step whose values differ
    first_tensor: dict[str, Any] | None = None  # the first parameter that differs
    metric_differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        """A few lines for the terminal."""
        if self.identical:
            return (
                f"identical: both runs ended with bit-identical weights ({self.n_tensors} tensors), the same "
                f"metrics, and the same loss and learning rate at each of {self.n_steps} logged steps"
            )
        lines = ["NOT identical:"]
        if self.first_step is not None:
            s = self.first_step
            lines.append(
                f"  they diverge first at step {s['step']} (epoch {s['epoch']}): {s['key']} "
                f"{s['a']!r} vs {s['b']!r}"
            )
        if self.first_tensor is not None:
            t = self.first_tensor
            lines.append(f"  weights differ, first in {t['name']} (largest difference {t['max_abs_diff']:.3g})")
        for name, (a, b) in self.metric_differences.items():
            lines.append(f"  {name}: {a!r} vs {b!r}")
        lines.append("  look for unseeded randomness, nondeterministic kernels or data read in a varying order")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "weights_identical": self.weights_identical,
            "metrics_identical": self.metrics_identical,
            "n_tensors": self.n_tensors,
            "n_steps": self.n_steps,
            "first_step": self.first_step,
            "first_tensor": self.first_tensor,
            "metric_differences": {k: list(v) for k, v in self.metric_differences.items()},
        }


def same_value(a: Any, b: Any) -> bool:
    """Exact equality that treats NaN as equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def compare_runs(a: Any, b: Any) -> ReproVerdict:
    """Compare two :class:`~cleanfit.pipeline.run.TabularRun` results exactly (no tolerance)."""
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    first_tensor = None
    for name in state_a:
        ta, tb = state_a[name], state_b.get(name)
        if tb is None or ta.shape != tb.shape or not torch.equal(ta, tb):
            diff = float("inf") if tb is None or ta.shape != tb.shape else float((ta.double() - tb.double()).abs().max())
            first_tensor = {"name": name, "max_abs_diff": diff}
            break
    if first_tensor is None and set(state_b) - set(state_a):
        first_tensor = {"name": sorted(set(state_b) - set(state_a))[0], "max_abs_diff": float("inf")}

    metric_differences = {
        k: (a.metrics.get(k), b.metrics.get(k))
        for k in sorted(set(a.metrics) | set(b.metrics))
        if not same_value(a.metrics.get(k), b.metrics.get(k))
    }
    first_step = _first_divergence(a.history.steps, b.history.steps) or _first_divergence(
        a.history.epochs, b.history.epochs
    )
    weights_ok, metrics_ok = first_tensor is None, not metric_differences
    return ReproVerdict(
        identical=weights_ok and metrics_ok and first_step is None,
        weights_identical=weights_ok,
        metrics_identical=metrics_ok,
        n_tensors=len(state_a),
        n_steps=len(a.history.steps),
        first_step=first_step,
        first_tensor=first_tensor,
        metric_differences=metric_differences,
    )


def _first_divergence(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> dict[str, Any] | None:
    for index in range(max(len(rows_a), len(rows_b))):
        if index >= len(rows_a) or index >= len(rows_b):
            shorter = rows_a if index >= len(rows_a) else rows_b
            last = shorter[-1] if shorter else {}
            return {"step": last.get("step"), "epoch": last.get("epoch"), "key": "length",
                    "a": len(rows_a), "b": len(rows_b)}
        row_a, row_b = rows_a[index], rows_b[index]
        for key in sorted(set(row_a) | set(row_b)):
            if not same_value(row_a.get(key), row_b.get(key)):
                return {"step": row_a.get("step"), "epoch": row_a.get("epoch"), "key": key,
                        "a": row_a.get(key), "b": row_b.get(key)}
    return None
