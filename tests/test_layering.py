"""The package's import structure: no cycles, and imports flow one way (DESIGN.md §2).

Reads the source with ``ast`` (nothing is imported), counting imports inside functions
too: a lazy import still ties two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nascompress"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # ``from pkg import mod`` imports the submodule when there is one.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                # Importing a submodule runs its package's __init__ too, but that edge is
                # the package's own business; record the most specific known module.
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph[node]:
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_package_init(graph_module: str) -> bool:
    return (PACKAGE.parent / graph_module.replace(".", "/") / "__init__.py").exists()


def test_no_import_cycles_between_modules():
    graph = _import_graph()
    # A package's __init__ re-exports its modules, and those modules import their
    # siblings by full path; edges into an __init__ from its own submodules are that
    # re-export pattern, not a design cycle.
    pruned = {
        name: {t for t in targets
               if not (_is_package_init(t) and name.startswith(t + "."))}
        for name, targets in graph.items()
    }
    assert _cycles(pruned) == []


@pytest.mark.parametrize(("lower", "upper"), [
    ("nascompress.strategies", "nascompress.search"),
    ("nascompress.spaces", "nascompress.search"),
    ("nascompress.pareto", "nascompress.search"),
    ("nascompress.latency", "nascompress.search"),
    ("nascompress.latency", "nascompress.evaluators"),
    ("nascompress.compression", "nascompress.evaluators"),
    ("nascompress.compression", "nascompress.search"),
    ("nascompress.evaluators", "nascompress.search"),
    ("nascompress.supernet", "nascompress.search"),
    ("nascompress.supernet", "nascompress.evaluators"),
    ("nascompress.supernet", "nascompress.spaces"),
])
def test_imports_flow_downward(lower, upper):
    graph = _import_graph()
    upward = sorted(f"{name} -> {target}" for name, targets in graph.items()
                    if name == lower or name.startswith(lower + ".")
                    for target in targets if target == upper or target.startswith(upper + "."))
    assert upward == []


def test_evaluators_hold_evaluators_only():
    """Latency measurement lives in nascompress.latency; evaluators only call its client."""
    names = sorted(p.stem for p in (PACKAGE / "evaluators").glob("*.py"))
    assert not [n for n in names if "latency" in n or n in ("layer_table", "ort_latency")]


def test_the_multi_objective_core_is_on_the_ground_floor():
    """Strategies, search, early stopping, picking and the report all build on it."""
    graph = _import_graph()
    assert graph["nascompress.pareto"] <= {"nascompress.objectives"}
    users = {name for name, targets in graph.items() if "nascompress.pareto" in targets}
    for expected in ("nascompress.strategies._base", "nascompress.search.early_stopping",
                     "nascompress.picking", "nascompress.report.data"):
        assert expected in users
