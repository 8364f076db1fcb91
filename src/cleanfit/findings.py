"""The :class:`Finding` record shared by the leakage audit and the loss-curve diagnosis."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One thing a check found.

    ``check`` is a stable id (``"duplicates"``, ``"overfitting"``, ...), ``severity`` one of
    ``"critical" | "warning" | "info"``, ``message`` a plain sentence that says what was found (with
    counts and names) and what to do, ``details`` the evidence as JSON-friendly values.

    >>> Finding("flat", "warning", "Train loss barely moved.").severity
    'warning'
    """

    check: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
