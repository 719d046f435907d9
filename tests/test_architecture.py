"""The package's import structure: no import cycles, dependencies only in the layers' direction,
and inside ``bench`` only the imports each wing is allowed (docs/architecture.md).

Every module's imports are read with ``ast`` (no import is executed): top-level
and function-level ``import``/``from ... import`` statements, relative imports,
and ``importlib.import_module("literal")`` calls. A function-level import that
only breaks a cycle is still an edge here, so it cannot hide the cycle.

Layers: ``bench`` -> ``methods``, ``datasets``; ``methods`` -> ``datasets.scaling`` at most;
``datasets`` imports neither. Wings of ``bench`` (``architecture_support.WINGS``): each
imports only the wings named beside it, and the core (``spec``, ``spec_parsing``,
``errors``, ``formatting``, ``stats``) imports no wing.
"""

from __future__ import annotations

import pytest

from architecture_support import (
    _describe, direction_violations, find_cycles, find_modules, FOLDERS, Graph, import_graph,
    KNOWN_CYCLES, NAMESPACE, ROOT, shortest_cycle_through, strongly_connected, wing_violations,
    without_edges)


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
