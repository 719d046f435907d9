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


TINY_MODEL = '''
    import torch.nn.functional as F
    from torch import nn
    from scaleqbench.methods import MethodCard, register_method

    class Tiny(nn.Module):
        def __init__(self, in_channels=1, num_classes=10, width=4):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
            self.fc = nn.Linear(width, num_classes)
        def features(self, x):
            return {"conv": self.conv(x)}
        def forward(self, x):
            return self.fc(self.conv(x).mean((-2, -1)))

    @register_method("NAME", MethodCard(family="test"),
                     configs={"mnist": {}, "quick": {"width": QUICK_WIDTH}})
    def build(in_channels=1, num_classes=10, **kw):
        return Tiny(in_channels, num_classes, **kw)
'''


def tiny_plugin(name: str, quick_width: int = 2) -> str:
    """A plugin module registering a tiny model (one conv, a linear head, ``features``) as
    ``name``, whose ``quick`` config has ``quick_width`` channels."""
    return (textwrap.dedent(TINY_MODEL).replace("NAME", name)
            .replace("QUICK_WIDTH", str(quick_width)))
