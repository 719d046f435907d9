"""Method plugins for tests: a real distribution (modules and a ``.dist-info`` folder) written
into a temporary folder, put on ``sys.path``, found by ``importlib.metadata`` like any
installed package, and removed again with everything it registered."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from scaleqbench import methods
from scaleqbench.bench.run import recipes
from scaleqbench.methods import registry


def write_plugin(root: Path, dist: str, version: str, modules: Mapping[str, str],
                 entry_points: Mapping[str, Mapping[str, str]]) -> Path:
    """Write the distribution ``dist`` ``version`` into ``root``: ``modules`` (module name ->
    source) and its entry points (group -> {name: "module[:attr]"}). Returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in eps.items())
        for group, eps in entry_points.items()))
    return root


@contextmanager
def installed(monkeypatch: pytest.MonkeyPatch, root: Path, modules: list[str]) -> Iterator[None]:
    """The plugins under ``root`` installed (and loaded) for the duration of the block; then
    their methods, recipes and ``modules`` are forgotten and the entry points scanned again."""
    before = set(registry._REGISTRY)
    try:
        with monkeypatch.context() as mp:
            mp.syspath_prepend(str(root))
            methods.reload_plugins()
            yield
    finally:
        for name in set(registry._REGISTRY) - before:
            methods.unregister_method(name)
            recipes.unregister_recipes(name)
        for module in modules:
            sys.modules.pop(module, None)
        methods.reload_plugins()
