"""The leakage audit: catch the ways a model fools you before it trains.

    report = cleanfit.audit(X, y, splits, time="date", groups="patient")
    print(report)            # a readable table, worst finding first
    report.passed            # no critical finding

Stable check ids: ``duplicates``, ``near-duplicates``, ``target-leakage``, ``identifier``,
``temporal``, ``group``, ``preprocessing``, ``label-order``, ``split-shift`` (see :data:`CHECKS`).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from cleanfit.audit._run import CHECKS, audit
from cleanfit.audit.report import AuditReport

__all__ = ["audit", "AuditReport", "CHECKS"]


class _CallableModule(types.ModuleType):
    """``cleanfit.audit`` is both this package and the function: once the package is imported,
    Python binds the name ``audit`` on ``cleanfit`` to the package, so calling it must still audit."""

    def __call__(self, *args: Any, **kwargs: Any) -> AuditReport:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
