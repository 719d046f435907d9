"""The package's import structure: no import cycles, dependencies only in the layers' direction,
and inside ``bench`` only the imports each wing is allowed (docs/architecture.md).

Every module's imports are read with ``ast`` (no import is executed): top-level
and function-level ``import``/``from ... import`` statements, relative imports,
and ``importlib.import_module("literal")`` calls. A function-level import that
only breaks a cycle is still an edge here, so it cannot hide the cycle.

Layers: ``bench`` -> ``methods``, ``datasets``; ``methods`` -> ``datasets.scaling`` at most;
``datasets`` imports neither. Wings of ``bench`` (:data:`WINGS`): each imports only the
wings named beside it, and the core (``spec``, ``spec_parsing``, ``errors``, ``formatting``)
imports no wing.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "scaleqbench"
FOLDERS = ("bench", "methods", "datasets")  # installed as scaleqbench.<folder> (package-dir)

# Tolerated cycles, each named by the import that closes it: none. An entry may only be added
# with the issue that removes it; test_known_cycles_still_exist fails as soon as one is gone.
KNOWN_CYCLES: list[tuple[str, str]] = []

# bench's wings -> the wings each may import (besides itself and the core); the cli may
# import every wing. The package root (``scaleqbench.bench``) re-exports the library API.
WINGS: dict[str, set[str]] = {
    "store": set(),
    "run": {"store"},
    "launch": {"store", "run"},
    "report": {"store", "published"},  # the report sets published values beside ours
    "published": {"store"},
    "cli": {"store", "run", "launch", "report", "published", "api"},
    # the library API (load_results, load_run, check_equivariance, ...): any wing but the cli
    "api": {"store", "run", "launch", "report", "published"},
}
CORE = ("spec", "spec_parsing", "errors", "formatting")

Graph = dict[str, dict[str, int]]  # module -> {imported module: first line of that import}


def find_modules(root: Path, namespace: str, folders: tuple[str, ...]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file under ``root/<folder>``."""
    modules = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            parts = [namespace, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module a ``from X import ...`` statement reads from."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _literal_import_module(node: ast.Call) -> str | None:
    """The name in ``importlib.import_module("name")`` / ``import_module("name")``."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    return first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """The project modules that ``module`` imports anywhere in its file, with a line each."""
    is_package = path.name == "__init__.py"
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in modules and target != module:
            found.setdefault(target, line)

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(module, is_package, node)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in modules else base, node.lineno)
        elif isinstance(node, ast.Call) and (name := _literal_import_module(node)):
            add(name, node.lineno)
    return found


def import_graph(modules: dict[str, Path]) -> Graph:
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def shortest_cycle_through(graph: Graph, src: str, dst: str) -> list[str] | None:
    """``src -> dst -> ... -> src``, the shortest cycle that uses the edge ``src -> dst``."""
    if dst not in graph.get(src, {}):
        return None
    parent: dict[str, str | None] = {dst: None}
    queue = deque([dst])
    while queue:
        node = queue.popleft()
        if node == src:
            path = []
            step: str | None = src
            while step is not None:
                path.append(step)
                step = parent[step]
            return [src, *reversed(path)]
        for nxt in sorted(graph.get(node, ())):
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def find_cycles(graph: Graph) -> list[list[str]]:
    """One concrete cycle per strongly connected component that has one, e.g. ``[a, b, a]``."""
    cycles = []
    for component in strongly_connected(graph):
        first = component[0]
        if len(component) == 1 and first not in graph.get(first, {}):
            continue
        members = set(component)
        for nxt in sorted(graph[first]):
            cycle = nxt in members and shortest_cycle_through(
                {m: {t: ln for t, ln in graph[m].items() if t in members} for m in members},
                first, nxt)
            if cycle:
                cycles.append(cycle)
                break
    return cycles


def without_edges(graph: Graph, edges: list[tuple[str, str]]) -> Graph:
    drop = set(edges)
    return {m: {t: ln for t, ln in targets.items() if (m, t) not in drop}
            for m, targets in graph.items()}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def direction_violations(graph: Graph, namespace: str = NAMESPACE) -> list[str]:
    """Imports against the layers' direction, as ``importer:line imports imported``."""
    bench, methods, datasets = (f"{namespace}.{f}" for f in FOLDERS)
    allowed_from_methods = {f"{datasets}.scaling"}
    bad = []
    for module, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            if _within(module, datasets) and (_within(target, bench) or _within(target, methods)):
                bad.append(f"{module}:{line} imports {target} (datasets imports neither bench "
                           "nor methods)")
            elif _within(module, methods) and _within(target, bench):
                bad.append(f"{module}:{line} imports {target} (methods imports nothing from "
                           "bench)")
            elif (_within(module, methods) and _within(target, datasets)
                  and target not in allowed_from_methods):
                bad.append(f"{module}:{line} imports {target} (methods may import only "
                           f"{', '.join(sorted(allowed_from_methods))} from datasets)")
    return bad


def wing_of(module: str, namespace: str = NAMESPACE) -> str | None:
    """``store``, ``run``, ... for a module of a wing; ``core`` for spec/errors; ``root`` for
    the package itself; None outside ``bench``."""
    prefix = f"{namespace}.bench"
    if not _within(module, prefix):
        return None
    rest = module[len(prefix) + 1:].split(".")
    if rest == [""]:
        return "root"
    return "core" if rest[0] in CORE else rest[0]


def wing_violations(graph: Graph, namespace: str = NAMESPACE) -> list[str]:
    """Imports between bench's wings that :data:`WINGS` does not allow."""
    bad = []
    for module, targets in sorted(graph.items()):
        src = wing_of(module, namespace)
        if src in (None, "root"):
            continue
        if src != "core" and src not in WINGS:
            bad.append(f"{module} is in no wing (bench/<wing>/: {', '.join(WINGS)}; or core)")
            continue
        for target, line in sorted(targets.items()):
            dst = wing_of(target, namespace)
            if dst in (None, src) or (dst == "core" and src != "root"):
                continue
            if src == "core" or dst == "root" or dst not in WINGS[src]:
                bad.append(f"{module}:{line} imports {target} ({src} may import "
                           f"{', '.join(sorted(WINGS.get(src, ()))) or 'no wing'})")
    return bad


def _describe(graph: Graph, cycle: list[str]) -> str:
    """``a -(line 3)-> b -(line 9)-> a``: each arrow with the line of the importing statement."""
    return cycle[0] + "".join(f" -(line {graph[a][b]})-> {b}" for a, b in zip(cycle, cycle[1:]))


@pytest.fixture(scope="module")
def graph() -> Graph:
    modules = find_modules(ROOT, NAMESPACE, FOLDERS)
    # a sanity floor: an empty walk (wrong root) would pass every check below
    assert {"scaleqbench.bench.cli.main", "scaleqbench.methods.registry",
            "scaleqbench.datasets.scaling"} <= set(modules)
    return import_graph(modules)


def test_no_import_cycles(graph):
    cycles = find_cycles(without_edges(graph, KNOWN_CYCLES))
    assert not cycles, "import cycles:\n" + "\n".join(_describe(graph, c) for c in cycles)


@pytest.mark.parametrize("edge", KNOWN_CYCLES, ids=lambda e: f"{e[0]}->{e[1]}")
def test_known_cycles_still_exist(graph, edge):
    assert shortest_cycle_through(graph, *edge), (
        f"the cycle through {edge[0]} -> {edge[1]} is gone: remove it from KNOWN_CYCLES")


def test_imports_follow_the_layers_direction(graph):
    bad = direction_violations(graph)
    assert not bad, "imports against the layers' direction:\n" + "\n".join(bad)


def test_bench_wings_import_only_what_they_may(graph):
    bad = wing_violations(graph)
    assert not bad, "imports between wings that are not allowed:\n" + "\n".join(bad)


def test_the_wing_checker_finds_what_it_is_meant_to_find():
    ns = NAMESPACE + ".bench"
    g: Graph = {f"{ns}.store.record": {f"{ns}.run.train": 3, f"{ns}.spec": 1},
                f"{ns}.run.train": {f"{ns}.store.record": 2},
                f"{ns}.spec": {f"{ns}.cli.main": 7},
                f"{ns}.stray": {}}
    bad = wing_violations(g)
    assert len(bad) == 3
    assert any("store.record:3" in b for b in bad) and any("spec:7" in b for b in bad)
    assert any("stray is in no wing" in b for b in bad)


# --- the checker itself: it must find what it is meant to find ---------------------------------

def test_cycle_finder_on_a_synthetic_graph():
    g: Graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4, "e": 5}, "e": {},
                "s": {"s": 6}}
    assert sorted(map(tuple, find_cycles(g))) == [("a", "b", "c", "a"), ("s", "s")]
    assert find_cycles(without_edges(g, [("c", "a"), ("s", "s")])) == []
    acyclic: Graph = {"a": {"b": 1, "c": 1}, "b": {"c": 1}, "c": {}}
    assert find_cycles(acyclic) == [] and len(strongly_connected(acyclic)) == 3
    # two cycles sharing a node form one component; the reported cycle is a real one
    two: Graph = {"a": {"b": 1, "c": 1}, "b": {"a": 1}, "c": {"a": 1}}
    [cycle] = find_cycles(two)
    assert cycle[0] == cycle[-1] and all(b in two[a] for a, b in zip(cycle, cycle[1:]))
    assert shortest_cycle_through(two, "a", "c") == ["a", "c", "a"]
    assert shortest_cycle_through(acyclic, "a", "b") is None


def test_import_parser_sees_relative_function_level_and_importlib_imports(tmp_path):
    files = {
        "pkg/__init__.py": "from .a import thing\n",
        "pkg/a.py": "import os\n\ndef f():\n    from . import b\n    return b\n",
        "pkg/b.py": "from .sub.c import x\nfrom .sub import d\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "import importlib\nx = 1\n\n"
                        "def g():\n    return importlib.import_module('ns.pkg.a')\n",
        "pkg/sub/d.py": "from .. import a\nfrom ..a import f\nimport ns.pkg.sub\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    g = import_graph(find_modules(tmp_path, "ns", ("pkg",)))
    assert {m: set(t) for m, t in g.items()} == {
        "ns.pkg": {"ns.pkg.a"},
        "ns.pkg.a": {"ns.pkg.b"},
        "ns.pkg.b": {"ns.pkg.sub.c", "ns.pkg.sub.d"},
        "ns.pkg.sub": set(),
        "ns.pkg.sub.c": {"ns.pkg.a"},
        "ns.pkg.sub.d": {"ns.pkg.a", "ns.pkg.sub"},
    }
    assert g["ns.pkg.a"]["ns.pkg.b"] == 4  # the line of the function-level import
    cycles = find_cycles(g)
    assert len(cycles) == 1 and set(cycles[0]) >= {"ns.pkg.a", "ns.pkg.b"}


def test_direction_checker_flags_each_forbidden_kind():
    g: Graph = {
        "scaleqbench.datasets.cache": {"scaleqbench.bench.store.run_store": 3},
        "scaleqbench.datasets": {"scaleqbench.methods": 4},
        "scaleqbench.methods.cnn": {"scaleqbench.datasets.scaling": 5,
                                   "scaleqbench.datasets.protocols": 6},
        "scaleqbench.methods.fourier.model": {"scaleqbench.bench.run.metrics": 7},
        "scaleqbench.bench.run.train": {"scaleqbench.methods": 8, "scaleqbench.datasets": 9},
    }
    bad = direction_violations(g)
    assert [b.split(" (")[0] for b in bad] == [
        "scaleqbench.datasets:4 imports scaleqbench.methods",
        "scaleqbench.datasets.cache:3 imports scaleqbench.bench.store.run_store",
        "scaleqbench.methods.cnn:6 imports scaleqbench.datasets.protocols",
        "scaleqbench.methods.fourier.model:7 imports scaleqbench.bench.run.metrics",
    ]
