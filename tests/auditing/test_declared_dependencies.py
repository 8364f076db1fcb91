"""Every third-party package the audit imports is a declared dependency (pyproject.toml [project]
dependencies and requirements-dev.txt), not one that merely arrives with another package."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# import name -> distribution name, where they differ
_DIST = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow"}


def _imported(package: Path) -> set[str]:
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("cleanfit", "__future__")}


def _declared(lines: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower() for line in lines
            if line.strip() and not line.strip().startswith("#")}


def test_every_package_the_audit_imports_is_declared() -> None:
    project = _declared(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    dev = _declared((ROOT / "requirements-dev.txt").read_text().splitlines())
    needed = {_DIST.get(n, n).lower() for n in _imported(ROOT / "src" / "cleanfit" / "auditing")}
    assert "threadpoolctl" in needed and "scipy" in needed  # the ones that came with scikit-learn
    assert needed <= project, f"imported but not in pyproject.toml: {sorted(needed - project)}"
    assert needed <= dev, f"imported but not in requirements-dev.txt: {sorted(needed - dev)}"
