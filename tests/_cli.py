"""The CLI in the test's own process, for the tests in every folder (``tests/conftest.py`` puts this folder on
``sys.path``, so ``from _cli import run_cli`` works from ``tests/cli/``, ``tests/auditing/``, ...).

``run_cli(["audit", "t.csv", "--target", "y"])`` runs ``cleanfit.cli.main.main``, the console script's entry
point (the path that maps errors to exit codes), and returns ``(exit code, stdout, stderr)``. A fresh
interpreter (``python -m cleanfit``) is the tests' other way in, where the process itself is the subject.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from cleanfit.cli.main import main


def run_cli(argv: list[str]) -> tuple[Any, str, str]:
    """``cleanfit ARGV...`` through ``main``: (exit code, stdout, stderr). The code is ``SystemExit.code`` as
    main gave it, unconverted, so ``code == 2`` also checks that main exits with an integer."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
        except SystemExit as exc:
            return exc.code, out.getvalue(), err.getvalue()
    raise AssertionError("cleanfit.cli.main.main always exits")
