"""Check ``text-columns``: text columns that are not features.

Dates or times stored as text (a CSV's ``date`` column) and identifier-like text (a ``Name`` with a
distinct value on nearly every row) would be one-hot encoded into hundreds of meaningless columns. The
rule for what such a column is lives in :func:`cleanfit.data.tables.text_column_problem`, the one
``cleanfit train`` refuses by.
"""

from __future__ import annotations

from cleanfit.auditing.inputs import AuditData
from cleanfit.data.tables import text_column_problem
from cleanfit.findings import Finding


def text_problems(data: AuditData) -> dict:
    """Feature column -> its :class:`~cleanfit.data.tables.TextColumn` problem, for text columns that have one (cached)."""
    if "text" not in data.cache:
        found = {}
        for c in data.features:
            problem = text_column_problem(data.X[c], c)
            if problem is not None:
                found[c] = problem
        data.cache["text"] = found
    return data.cache["text"]


def check_text_columns(data: AuditData) -> list[Finding]:
    """A warning per text column that is a date or an identifier, info for one with very many levels.

    >>> import pandas as pd
    >>> from cleanfit.auditing.inputs import prepare
    >>> X = pd.DataFrame({"date": [f"2012-01-{d:02d}" for d in range(1, 29)], "x": range(28)})
    >>> (f,) = check_text_columns(prepare(X, None, None, time=None, groups=None, transformers=(), seed=0, requested=()))
    >>> f.severity, f.details["kind"], f.details["distinct"]
    ('warning', 'date', 28)
    """
    findings = []
    for problem in text_problems(data).values():
        c, n = problem.column, problem.distinct
        details = {"column": c, "kind": problem.kind, "distinct": n, "distinct_share": round(problem.share, 4)}
        if problem.kind == "date":
            findings.append(Finding("text-columns", "warning", (
                f"Column {c!r} holds dates or times stored as text (e.g. {problem.example!r}, {n:,} distinct "
                f"values): as a feature it would be one-hot encoded into {n:,} meaningless columns. Use it as "
                f"the time column (audit(time={c!r}); data.time = {c!r} in a config) or drop it."), details))
        elif problem.kind == "identifier":
            findings.append(Finding("text-columns", "warning", (
                f"Column {c!r} is text with a distinct value on {problem.share:.0%} of the rows ({n:,} values, "
                f"e.g. {problem.example!r}): an identifier or free text, not a feature a model can learn from "
                f"(one-hot encoding gives {n:,} columns). Drop it (data.drop = [{c!r}]) or derive a feature "
                "from it."), details))
        else:
            findings.append(Finding("text-columns", "info", (
                f"Column {c!r} is text with {n:,} distinct values: one-hot encoding gives {n:,} columns, most "
                f"of them rare. Group the rare values, encode it otherwise, or drop it (data.drop = [{c!r}])."),
                details))
    return findings
