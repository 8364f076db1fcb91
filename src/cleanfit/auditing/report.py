"""The :class:`AuditReport`: what the leakage audit found, as text, JSON-friendly dicts and HTML."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cleanfit._util.files import write_atomic
from cleanfit._util.html import badge, esc, page, table
from cleanfit.errors import DataError
from cleanfit.findings import SEVERITIES, Finding

FAIL_ON = ("critical", "warning", "never")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class AuditReport:
    """The findings of :func:`cleanfit.audit`, worst first.

    ``checks`` lists the checks that ran; ``skipped`` maps each check that could not run to the
    reason (for example ``"needs splits"``). ``passed`` is True when no finding is critical.
    ``task`` is the task the target was judged as (``"classification"``/``"regression"``, None
    without a target) and ``split`` the split audited, ``{"method", "fingerprint"}`` (None without
    one): the same task and split ``cleanfit train`` records for the same data and settings.

    >>> r = AuditReport([Finding("label-order", "warning", "Rows are sorted by label.")],
    ...                 checks=["label-order"], n_rows=10, n_features=2)
    >>> r.passed, r.counts()["warning"]
    (True, 1)
    >>> print(r)  # doctest: +NORMALIZE_WHITESPACE
    Leakage audit: 10 rows, 2 features, 1 check: PASSED (0 critical, 1 warning, 0 info)
    severity  check        finding
    --------  -----------  -------------------------
    warning   label-order  Rows are sorted by label.
    """

    findings: list[Finding]
    checks: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    n_rows: int = 0
    n_features: int = 0
    seconds: float = 0.0
    task: str | None = None
    split: dict[str, str] | None = None
    sample: dict[str, Any] | None = None  # out of core: {"rows", "checks", "out_of_core"}: the row sample some checks saw

    def __post_init__(self) -> None:
        self.findings = sorted(self.findings, key=lambda f: _RANK[f.severity])

    @property
    def passed(self) -> bool:
        """True when no finding is critical."""
        return not any(f.severity == "critical" for f in self.findings)

    def counts(self) -> dict[str, int]:
        """The number of findings per severity."""
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES}

    def failed(self, fail_on: str = "critical") -> bool:
        """Whether a gate set at ``fail_on`` (``"critical"``, ``"warning"`` or ``"never"``) fails."""
        if fail_on not in FAIL_ON:
            raise DataError(f"fail_on={fail_on!r} is not a gate: use one of {', '.join(FAIL_ON)}")
        if fail_on == "never":
            return False
        worst = _RANK[fail_on]
        return any(_RANK[f.severity] <= worst for f in self.findings)

    def by_check(self, check: str) -> list[Finding]:
        """The findings of one check id."""
        return [f for f in self.findings if f.check == check]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict: ``passed``, ``counts``, ``findings``, ``checks``, ``skipped``, sizes,
        ``task`` and ``split`` (``{"method", "fingerprint"}``)."""
        return {
            "passed": self.passed,
            "task": self.task,
            "split": None if self.split is None else dict(self.split),
            "counts": self.counts(),
            "findings": [_jsonable(f.to_dict()) for f in self.findings],
            "checks": list(self.checks),
            "skipped": dict(self.skipped),
            "n_rows": self.n_rows,
            "n_features": self.n_features,
            "seconds": round(self.seconds, 3),
            **({"sample": _jsonable(self.sample)} if self.sample is not None else {}),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            write_atomic(Path(path), text + "\n")
        return text

    def summary(self) -> str:
        """One line: sizes, verdict and counts."""
        c = self.counts()
        verdict = "PASSED" if self.passed else "FAILED"
        return (
            f"Leakage audit: {self._scope()}: {verdict} "
            f"({c['critical']} critical, {c['warning']} warning, {c['info']} info)"
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        if self.findings:
            width = max(len(f.check) for f in self.findings)
            text_width = 88
            rule = min(text_width, max(len(_with_impact(f)) for f in self.findings))
            rows = [("severity", "check", "finding"), ("-" * 8, "-" * width, "-" * rule)]
            for f in self.findings:
                wrapped = textwrap.wrap(_with_impact(f), text_width) or [""]
                rows.append((f.severity, f.check, wrapped[0]))
                rows.extend(("", "", more) for more in wrapped[1:])
            lines += [f"{s:<8}  {c:<{width}}  {m}".rstrip() for s, c, m in rows]
        else:
            lines.append("No leakage found.")
        if self.sample is not None:
            lines.append(self._sample_note())
        if self.skipped:
            lines.append("skipped: " + "; ".join(f"{k} ({v})" for k, v in self.skipped.items()))
        return "\n".join(lines)

    def _sample_note(self) -> str:
        """``"out of core: near-duplicates, ... ran on a uniform sample of 100,000 rows"``."""
        assert self.sample is not None
        checks = ", ".join(self.sample.get("checks", ())) or "no check"
        return f"out of core: {checks} ran on a uniform sample of {int(self.sample['rows']):,} rows; the rest on every row"

    def _scope(self) -> str:
        """What was audited: ``"609 rows, 32 features, 8 checks"``."""
        checks = f"{len(self.checks)} check{'s' * (len(self.checks) != 1)}"
        return f"{self.n_rows:,} rows, {self.n_features:,} features, {checks}"

    def _body(self, *, scope: bool = True) -> str:
        c = self.counts()
        verdict = badge("ok") + " <b>passed</b>" if self.passed else badge("critical") + " <b>failed</b>"
        counts = f"{c['critical']} critical, {c['warning']} warning, {c['info']} info"
        where = f"{esc(self._scope())}; " if scope else ""
        parts = [f"<p>{verdict}: {where}{counts}</p>"]
        if self.findings:
            nowrap = '<span style="white-space:nowrap">{}</span>'
            rows = [(badge(f.severity), nowrap.format(esc(f.check)), esc(_with_impact(f))) for f in self.findings]
            parts.append(table(["severity", "check", "finding"], rows, raw=True))
        else:
            parts.append("<p>No leakage found.</p>")
        checks = [(esc(c), "ran") for c in self.checks] + [(esc(c), esc(r)) for c, r in self.skipped.items()]
        parts.append("<h2>Checks</h2>" + table(["check", "status"], checks, raw=True))
        if self.sample is not None:
            parts.append(f"<p>{esc(self._sample_note())}</p>")
        return "".join(parts)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page (the look of cleanfit's run report); written to ``path`` if given."""
        html = page("Leakage audit", self._body(scope=False), subtitle=self._scope())
        if path is not None:
            write_atomic(Path(path), html)
        return html

    def _repr_html_(self) -> str:
        return f"<div><h3>Leakage audit</h3>{self._body()}</div>"


def impact_text(impact: dict[str, Any]) -> str:
    """One sentence for ``details["impact"]``.

    >>> impact_text({"metric": "accuracy", "with": 0.97, "without": 0.71, "interval": [0.22, 0.3],
    ...              "compared": "the test score with and without 'leak'"})
    "Impact: accuracy 0.970 vs 0.710 (the test score with and without 'leak'): +0.260, 95% interval +0.220 to +0.300."
    """
    if impact.get("with") is None or impact.get("without") is None:
        return f"Impact not measured: {impact.get('note', 'no rows to compare')}."
    text = (f"Impact: {impact['metric']} {impact['with']:.3f} vs {impact['without']:.3f} ({impact['compared']}): "
            f"{impact['with'] - impact['without']:+.3f}")
    interval = impact.get("interval")
    return text + (f", 95% interval {interval[0]:+.3f} to {interval[1]:+.3f}." if interval else ".")


def _with_impact(f: Finding) -> str:
    impact = f.details.get("impact")
    return f.message if not isinstance(impact, dict) else f"{f.message} {impact_text(impact)}"


def _jsonable(value: Any) -> Any:
    """Plain Python values for JSON (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)

