"""The leakage audit: catch the ways a model fools you before it trains.

    report = cleanfit.audit(X, y, splits, time="date", groups="patient")
    print(report)            # a readable table, worst finding first
    report.passed            # no critical finding

Stable check ids: ``duplicates``, ``near-duplicates``, ``target-leakage``, ``identifier``,
``temporal``, ``group``, ``preprocessing``, ``label-order``, ``split-shift`` (see :data:`CHECKS`).
"""

from __future__ import annotations

from cleanfit._callable_module import make_callable
from cleanfit.audit._run import CHECKS, audit
from cleanfit.audit.report import AuditReport

__all__ = ["audit", "AuditReport", "CHECKS"]


make_callable(__name__, audit)  # cf.audit stays the function even once this package is imported
