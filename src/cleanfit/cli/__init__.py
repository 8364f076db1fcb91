"""The ``cleanfit`` command: ``main`` (in ``main.py``) and one module per subcommand.

May import: ``cleanfit.pipeline``, ``cleanfit.comparison``, ``cleanfit.auditing`` and the stages below.
"""

from __future__ import annotations

from cleanfit.cli.main import cli, main

__all__ = ["cli", "main"]
