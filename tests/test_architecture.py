"""The package's architecture: layers import only downwards, no import cycles, no module named ``general``.

The import graph is read from the source (``ast``: module-level and function-level imports alike, so a
lazy import cannot hide a cycle); the check needs no import of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bayeslin_jax

PACKAGE = Path(bayeslin_jax.__file__).parent
#: Layers, lowest first: a module may import its own layer and those below it, never one above.
LAYERS = ("core", "engine", "diagnostics", "workflows", "interfaces")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """bayeslin_jax modules that ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            full = [f"{module}.{alias.name}" for alias in node.names]
            targets = [f if f in known else module for f in full]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_root_shows_the_layers_as_folders():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert set(LAYERS) <= folders
    root_modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert root_modules == ["__init__.py"], f"flat modules at the package root: {root_modules}"


def test_no_module_named_general():
    assert not [name for name in _modules() if name.rsplit(".", 1)[-1] == "general"]


def test_layers_import_only_downwards():
    bad = [
        f"{module} ({LAYERS[_layer(module)]}) imports {target} ({LAYERS[_layer(target)]})"
        for module, targets in import_graph().items()
        for target in targets
        if _layer(module) is not None and _layer(target) is not None and _layer(target) > _layer(module)
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = import_graph()
    # the root __init__ only maps names to modules, lazily: it is everyone's front door, not a dependency
    graph = {m: {t for t in ts if t != "bayeslin_jax"} for m, ts in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("name", bayeslin_jax.__all__)
def test_every_public_name_resolves(name):
    assert getattr(bayeslin_jax, name) is not None
