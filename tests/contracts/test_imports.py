"""The import graph of the installed packages: no cycles, and dependencies point one way.

Layers, lowest first: the core (``indexnas.*`` operators, specs, cost), ``zoo``, ``surgery``, ``search``,
``tasks`` (the built-in tasks: they implement search's `Problem`, and search imports none of them), ``reports``, and on top the ways in: the command line (``indexnas.cli``, ``indexnas.commands`` and every
package's ``cli`` / ``cli_*`` module) and the Python API: ``indexnas.api``, the package ``indexnas`` (whose
``suggest``, ``load`` and ``apply`` import it on first use) and the package ``indexnas.search`` itself
(calling it, ``indexnas.search(model, ...)``, runs `indexnas.api.search`); its modules are the search layer. A module may import its own layer or a lower one. The graph is read from
the source (ast), with imports inside functions and module names handed to ``importlib.import_module``
or listed in a registry (a tuple or dict of names): an import that runs late still makes a dependency.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

LAYERS = ("core", "zoo", "surgery", "search", "tasks", "reports", "cli")
PACKAGES = ("indexnas.zoo", "indexnas.surgery", "indexnas.search", "indexnas.tasks", "indexnas.reports")


def installed_modules() -> dict[str, Path]:
    """Every module of the installed namespace, by dotted name, from the package paths the install maps."""
    import indexnas.reports
    import indexnas.search
    import indexnas.surgery
    import indexnas.tasks
    import indexnas.tasks.data
    import indexnas.zoo

    modules = {}
    for package in (indexnas, indexnas.zoo, indexnas.surgery, indexnas.search, indexnas.tasks,
                    indexnas.tasks.data, indexnas.reports):
        for path in Path(package.__path__[0]).glob("*.py"):
            modules[package.__name__ if path.stem == "__init__" else f"{package.__name__}.{path.stem}"] = path
    return modules


def _names(node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """The modules one syntax node imports or names for a late import."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names]
    if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
        return [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if isinstance(node, (ast.Tuple, ast.List, ast.Dict)):
        items = node.values if isinstance(node, ast.Dict) else node.elts
        return [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
    return []


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of the namespace it imports (at top level or inside functions)."""
    modules = installed_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = (n for node in ast.walk(ast.parse(path.read_text())) for n in _names(node, modules))
        graph[name] = {n for n in found if n in modules and n != name}
    return graph


def layer(module: str) -> str:
    """The layer a module belongs to (see the module docstring)."""
    last = module.rpartition(".")[2]
    ways_in = ("indexnas", "indexnas.api", "indexnas.search", "indexnas.cli", "indexnas.commands")
    if module in ways_in or last == "cli" or last.startswith("cli_"):
        return "cli"
    for package in PACKAGES:
        if module == package or module.startswith(package + "."):
            return package.rpartition(".")[2]
    return "core"


def layer_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """layer -> the other layers its modules import."""
    layers: dict[str, set[str]] = {name: set() for name in LAYERS}
    for module, imported in graph.items():
        layers[layer(module)] |= {layer(m) for m in imported} - {layer(module)}
    return layers


def as_text(graph: dict[str, set[str]]) -> str:
    """One line per node, ``a -> b, c`` (what the closing note of issue 11 shows)."""
    return "\n".join(f"{node} -> {', '.join(sorted(graph[node])) or '-'}" for node in sorted(graph))


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_covers_every_package(graph):
    assert {layer(m) for m in graph} == set(LAYERS)
    assert "indexnas.surgery.rewrite" in graph["indexnas.surgery"]  # a late (lazy) import is an edge


def test_modules_import_no_cycle(graph):
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert set(order) == set(graph)


def test_dependencies_point_down_the_layers(graph):
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = sorted(f"{m} -> {i}" for m, imported in graph.items() for i in imported if rank[layer(i)] > rank[layer(m)])
    assert not upward, "imports against the direction core <- zoo <- surgery <- search <- tasks <- reports <- cli:\n" + "\n".join(upward)


def test_packages_import_no_cycle(graph):
    layers = layer_graph(graph)
    try:
        list(TopologicalSorter(layers).static_order())
    except CycleError as error:
        pytest.fail(f"package cycle: {' -> '.join(error.args[1])}")


HEAVY = ("timm", "torchvision", "torch._dynamo", "matplotlib", "fvcore", "optuna", "pandas", "scipy", "skimage")


def test_the_command_line_parser_loads_no_heavy_package():
    """`indexnas --help` (and every worker process) builds the parser: handlers import what they need."""
    probe = (
        "import sys; from indexnas.cli import build_parser; build_parser(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"building the parser imported {loaded}"


if __name__ == "__main__":  # print the graph: python tests/contracts/test_imports.py [--modules]
    full = import_graph()
    print(as_text(full if "--modules" in sys.argv else layer_graph(full)))
