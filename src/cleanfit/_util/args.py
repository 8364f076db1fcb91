"""Argument validation, each rule written once: what an int is, what a seed is, what a fraction is.

The callers keep their own words (``split(test=...)``, ``Batches(seed=...)``, a config field), so an
error still names the parameter, the value and the fix; the rule behind it is the same everywhere.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
from typing import Any

from cleanfit.errors import DataError

SEED_LIMIT = 2**32  # seeds are ints in [0, 2**32): what NumPy's and torch's generators all take


def is_int(value: Any) -> bool:
    """A Python or NumPy integer, or a 0-d integer tensor (as a restored checkpoint holds); not a bool.

    >>> is_int(3), is_int(True), is_int(3.0)
    (True, False, False)
    """
    if isinstance(value, (bool,)) or type(value).__name__ == "bool_":
        return False
    if isinstance(value, numbers.Integral):
        return True
    dim = getattr(value, "dim", None)  # a torch tensor, without importing torch here
    if callable(dim) and hasattr(value, "is_floating_point") and dim() == 0:
        return not value.is_floating_point() and str(getattr(value, "dtype", "")) != "torch.bool"
    return False


def is_seed(value: Any) -> bool:
    """An int (:func:`is_int`) in ``[0, 2**32)``."""
    return is_int(value) and 0 <= int(value) < SEED_LIMIT


def check_seed(seed: Any, call: str, *, error: type[Exception] = DataError) -> int:
    """``seed`` as an int, or ``error`` saying ``"<call>(seed=...): the seed must be an int in [0, 2**32)"``.

    >>> check_seed(7, "split")
    7
    >>> check_seed(2**40, "Batches")
    Traceback (most recent call last):
    cleanfit.errors.DataError: Batches(seed=1099511627776): the seed must be an int in [0, 2**32)
    """
    if not is_seed(seed):
        raise error(f"{call}(seed={seed!r}): the seed must be an int in [0, 2**32)")
    return int(seed)


def is_fraction(value: Any) -> bool:
    """A real number (not a bool) in ``[0, 1)``: a share of the rows to hold out."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= float(value) < 1


def is_positive(value: Any) -> bool:
    """A finite real number (not a bool, not text) greater than 0.

    >>> is_positive(1.0), is_positive("1"), is_positive(float("inf")), is_positive(0)
    (True, False, False, False)
    """
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)) and float(value) > 0)


def is_flag(value: Any) -> bool:
    """A bool (Python's or NumPy's); not ``1`` and not ``"yes"``.

    >>> is_flag(True), is_flag("yes"), is_flag(1)
    (True, False, False)
    """
    return isinstance(value, bool) or type(value).__name__ == "bool_"


def is_path(value: Any) -> bool:
    """A path: ``str`` or an ``os.PathLike`` (not an int, which ``open`` would take as a descriptor)."""
    return isinstance(value, (str, os.PathLike))


def takes_args(fn: Any, count: int) -> bool:
    """Whether ``fn`` can be called with ``count`` positional arguments (True when it cannot be told).

    >>> takes_args(lambda seed: 1.0, 1), takes_args(lambda: 1.0, 1)
    (True, False)
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: let the call decide
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True
