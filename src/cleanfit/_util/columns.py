"""Looking up a name among known ones, with "did you mean" for a typo: one rule for every lookup.

Columns of a table (the audit, ``cleanfit audit``, a config's ``data.*``), config keys and choices,
a factory in ``model.module``: each says what was wrong in its own words and asks :func:`close_names`
for the near misses.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

CUTOFF = 0.5  # how alike a name must be to be suggested (difflib's ratio)


def close_names(name: Any, options: Iterable[Any], n: int = 3) -> list[str]:
    """Up to ``n`` of ``options`` (as text) closest to ``name``, best first.

    >>> close_names("diagnosys", ["diagnosis", "radius", "texture"])
    ['diagnosis']
    """
    return difflib.get_close_matches(str(name), [str(o) for o in options], n=n, cutoff=CUTOFF)


def did_you_mean(name: Any, options: Iterable[Any], n: int = 3) -> str:
    """``"did you mean 'a', 'b'?"`` for the near misses, or ``""`` when there is none.

    >>> did_you_mean("cultivr", ["alcohol", "cultivar"]), did_you_mean("zzz", ["alcohol"])
    ("did you mean 'cultivar'?", '')
    """
    near = close_names(name, options, n)
    return f"did you mean {', '.join(map(repr, near))}?" if near else ""


def shown(names: Iterable[Any], limit: int) -> str:
    """``"'a', 'b', ..."``: the first ``limit`` names, quoted, with an ellipsis when there are more."""
    names = [str(n) for n in names]
    return ", ".join(map(repr, names[:limit])) + (", ..." if len(names) > limit else "")
