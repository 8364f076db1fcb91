"""The house: no import cycle between cleanfit's modules, and each stage's header shows what it needs.

The layers themselves (which stage may import which) are the import-linter contract in pyproject.toml,
checked by ``lint-imports`` in CI; this test adds what that contract does not state.
"""

from __future__ import annotations

import grimp


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("cleanfit", exclude_type_checking_imports=True)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every elementary cycle found by a depth-first search over the module graph."""
    modules = sorted(m for m in graph.modules if m != "cleanfit")  # the root only re-exports, lazily
    edges = {m: sorted(n for n in graph.find_modules_directly_imported_by(m) if n in modules) for m in modules}
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in edges[m]:
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in modules:
        if m not in state:
            visit(m)
    return found


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a")):
        graph.add_import(importer=a, imported=b)
    graph.add_module("cleanfit")
    assert [sorted(set(c)) for c in _cycles(graph)] == [["p.a", "p.b", "p.c"]]


def test_at_most_ten_modules_at_the_top_level() -> None:
    top = [m for m in _graph().find_children("cleanfit") if "." not in m[len("cleanfit."):]]
    modules = [m for m in top if not _graph().find_children(m)]
    assert len(modules) <= 10, modules
