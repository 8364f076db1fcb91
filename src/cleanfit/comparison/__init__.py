"""Comparison: two candidates trained on the same seeds, and an honest verdict.

``compare`` holds :func:`compare` (trains configs through ``cleanfit.pipeline``, or calls
``candidate(seed)``); ``result`` the :class:`Comparison`; ``stats`` the statistics behind the verdict;
``mlflow_log`` the parent and child MLflow runs.

May import: ``cleanfit.pipeline`` and every stage below it.
"""

from __future__ import annotations

from cleanfit.comparison.compare import compare
from cleanfit.comparison.result import Comparison

__all__ = ["compare", "Comparison"]
