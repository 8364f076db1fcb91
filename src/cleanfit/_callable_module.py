"""Modules that are also the function they are named after (``cleanfit.audit``, ``cleanfit.compare``).

``cf.audit`` and ``cf.compare`` are functions, exported lazily by the package. But importing the
submodule of the same name (``import cleanfit.audit``, or any tool that imports every module, such as
pytest's doctest collection) makes Python bind the package attribute to the *module*, replacing the
function. Making that module callable keeps ``cf.audit(X, y)`` working in every import order, while
``from cleanfit.audit import AuditReport`` still works as usual.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Make module ``module_name`` callable as ``function``."""

    class _CallableModule(types.ModuleType):
        __doc__ = sys.modules[module_name].__doc__

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = _CallableModule
