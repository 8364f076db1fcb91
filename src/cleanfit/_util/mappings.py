"""Nested mappings as flat ``a.b.c`` keys (tracking parameters, run identities).

>>> flatten({"model": {"fc": {"weight": [4, 3]}}, "seed": 0})
{'model.fc.weight': [4, 3], 'seed': 0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``mapping`` with every nested mapping's keys joined to their parents' by dots."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
