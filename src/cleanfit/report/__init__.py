"""Reports: the loss-curve plot and the self-contained HTML run report (the audit's HTML lives with
the audit, in ``cleanfit.auditing.report``). matplotlib is imported only when a plot is drawn.

May import: ``cleanfit.training``, ``cleanfit.tracking``, ``cleanfit.auditing``, ``cleanfit.data``,
``cleanfit._util``.
"""
