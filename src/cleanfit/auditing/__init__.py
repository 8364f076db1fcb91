"""The leakage audit: catch the ways a model fools you before it trains.

    report = cleanfit.audit(X, y, splits, time="date", groups="patient")
    print(report)            # a readable table, worst finding first
    report.passed            # no critical finding

``run.py`` holds :func:`audit` (prepare the inputs, run each family of checks); one module per family
of checks (``duplicates``, ``target``, ``temporal``, ``groups``, ``preprocessing``, ``distribution``);
``report.py`` the :class:`AuditReport`. Stable check ids: ``duplicates``, ``near-duplicates``,
``target-leakage``, ``identifier``, ``temporal``, ``group``, ``preprocessing``, ``label-order``,
``split-shift`` (see :data:`CHECKS`).

May import: ``cleanfit.data`` and ``cleanfit._util`` (the package is named ``auditing`` so that the
function ``cleanfit.audit`` and this package never share a name).
"""

from __future__ import annotations

from cleanfit.auditing.report import AuditReport
from cleanfit.auditing.run import CHECKS, audit

__all__ = ["audit", "AuditReport", "CHECKS"]
