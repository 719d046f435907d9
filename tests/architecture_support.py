"""The import checker behind tests/test_architecture.py: every module's imports read with
``ast`` (no import is executed), the import graph, its cycles, and the imports that go
against the layers' direction or a wing's allowed imports (:data:`WINGS`)."""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path


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


CORE = ("spec", "spec_parsing", "errors", "formatting", "stats")


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
