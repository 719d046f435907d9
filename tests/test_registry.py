"""The method registry: names, wildcards, configs, recipes against the published protocols,
display styles, timm, entry-point plugins (working and broken) and the import structure."""

from __future__ import annotations

import ast
import importlib.metadata
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from scaleqbench import methods
from scaleqbench.methods import MethodStyle, TrainRecipe, UnknownConfigError, UnknownMethodError
from scaleqbench.methods.style import DECLARED_MARKERS, DERIVED_MARKERS, OKABE_ITO


def test_list_and_wildcards():
    names = methods.list_methods()
    assert "cnn" in names and names == sorted(names)
    assert methods.list_methods("c*") == [n for n in names if n.startswith("c")]
    assert methods.list_methods("zzz*") == []


def test_unknown_method_lists_names_and_the_closest_match():
    with pytest.raises(UnknownMethodError) as err:
        methods.create("cnnn")
    msg = str(err.value)
    assert "did you mean 'cnn'" in msg and "registered:" in msg


def test_resolve_all_commas_patterns_and_timm():
    every = methods.resolve_methods("all")
    assert every == methods.list_methods(aliases=False)
    # an alias (a second name for a model) is left out of `all` but resolves by name
    assert "dss" in every and "dss_vector" not in every
    assert methods.get_method("dss_vector").alias_of == "dss"
    assert methods.resolve_methods("dss_*") == ["dss_scalar", "dss_vector"]
    assert methods.resolve_methods("cnn,timm:resnet18,cnn") == ["cnn", "timm:resnet18"]
    with pytest.raises(UnknownMethodError, match="matches no method"):
        methods.resolve_methods("zz*")


def test_create_uses_the_config_and_overrides():
    quick = methods.create("cnn", config="quick")
    assert [b[0].out_channels for b in quick.blocks] == [16, 32, 48]
    wide = methods.create("cnn", config="quick", channels=(8, 8, 8))
    assert [b[0].out_channels for b in wide.blocks] == [8, 8, 8]
    with pytest.raises(UnknownConfigError, match="defines"):
        methods.create("cnn", config="imagenet")


# The published training protocols, written out from their sources (not from the code).
SESN_MNIST = dict(
    # Sosnovik et al., ICLR 2020, Sec. 6.1; github.com/ISosnovik/sesn, experiments_mnist.sh
    # (--optim adam --lr 0.01 --lr_steps 20 40 --batch_size 128 --epochs 60) and the defaults
    # of train_scale_mnist.py (lr_gamma 0.1; its Adam takes no weight decay). The same script
    # trains every MNIST model of the comparison: the CNN, SESN and SESN's DSS models.
    optimizer="adam", lr=0.01, weight_decay=0.0, schedule="multistep", milestones=(20, 40),
    gamma=0.1, epochs=60, batch_size=128)
SESN_STL10 = dict(
    # Sosnovik et al., ICLR 2020, Sec. 6.2; github.com/ISosnovik/sesn, experiments_stl.sh
    # (--optim sgd --nesterov --decay 0.0005 --lr 0.1 --lr_steps 300 400 600 800
    # --lr_gamma 0.2 --batch_size 128 --epochs 1000) and train_stl10.py (momentum 0.9);
    # wrn_16_8_ses_a/b and wrn_16_8_dss are trained alike.
    optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
    schedule="multistep", milestones=(300, 400, 600, 800), gamma=0.2, epochs=1000,
    batch_size=128)
FOURIER_MNIST = dict(
    # Rahman & Yeh, NeurIPS 2023; github.com/ashiq24/Scale_Equivarinat_Fourier_Layer,
    # train_mnist.py (learning_rate 1e-2, weight_decay 3e-2, epochs 60, batch_size 128,
    # StepLR step_size_lr 20, step_gamma_lr 0.1) and models/core.py (AdamW by default).
    optimizer="adamw", lr=0.01, weight_decay=0.03, schedule="step", step_size=20, gamma=0.1,
    epochs=60, batch_size=128)

PUBLISHED = [
    ("cnn", "mnist", SESN_MNIST), ("sesn", "mnist", SESN_MNIST),
    ("sesn_vector", "mnist", SESN_MNIST), ("dss", "mnist", SESN_MNIST),
    ("dss_vector", "mnist", SESN_MNIST), ("dss_scalar", "mnist", SESN_MNIST),
    ("sesn", "stl10", SESN_STL10), ("sesn_vector", "stl10", SESN_STL10),
    ("dss", "stl10", SESN_STL10), ("dss_vector", "stl10", SESN_STL10),
    ("fourier", "mnist", FOURIER_MNIST),
]


@pytest.mark.parametrize("name,config,protocol", PUBLISHED,
                         ids=[f"{n}-{c}" for n, c, _ in PUBLISHED])
def test_recipes_follow_the_published_protocols(name, config, protocol):
    recipe = methods.get_method(name).recipe(config)
    got = {field: getattr(recipe, field) for field in protocol}
    assert got == protocol


def test_with_epochs_squeezes_the_schedule():
    r = TrainRecipe(milestones=(20, 40), step_size=20, epochs=60)
    squeezed = r.with_epochs(6)
    assert (squeezed.epochs, squeezed.milestones, squeezed.step_size) == (6, (2, 4), 2)
    assert r.with_epochs(60) is r
    assert TrainRecipe(milestones=(1, 2), epochs=60).with_epochs(6).milestones == (1,)


def test_timm_models_pass_channels_and_classes_and_take_small_inputs():
    model = methods.create("timm:resnet18", in_channels=3, num_classes=7)
    for size in (8, 28, 49):
        assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
    feats = model.features(torch.randn(2, 3, 28, 28))
    assert len(feats) >= 4 and all(f.dim() == 4 for f in feats.values())
    with pytest.raises(UnknownMethodError, match="timm has no model"):
        methods.create("timm:resnet_does_not_exist")


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    pkg = tmp_path / "sb_dummy_plugin.py"
    pkg.write_text(textwrap.dedent('''
        import torch
        from torch import nn
        from scaleqbench.methods import register_method, TrainRecipe

        class Tiny(nn.Module):
            def __init__(self, in_channels, num_classes, width=4):
                super().__init__()
                self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
                self.fc = nn.Linear(width, num_classes)
            def features(self, x):
                return {"conv": self.conv(x)}
            def forward(self, x):
                return self.fc(self.conv(x).mean((-2, -1)))

        @register_method("dummy_plugin", family="test", configs={"mnist": {}, "quick": {"width": 2}},
                         recipes={"quick": TrainRecipe(lr=0.5, epochs=1)})
        def build(in_channels=1, num_classes=10, **kw):
            return Tiny(in_channels, num_classes, **kw)
    '''))
    dist = tmp_path / "sb_dummy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sb-dummy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[scaleqbench.methods]\ndummy = sb_dummy_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    methods.reload_plugins()
    try:
        assert "dummy_plugin" in methods.list_methods()
        entry = methods.get_method("dummy_plugin")
        assert entry.source == "sb_dummy_plugin" and entry.recipe("quick").lr == 0.5
        assert methods.create("dummy_plugin", config="quick").conv.out_channels == 2
    finally:
        methods.registry._REGISTRY.pop("dummy_plugin", None)
        sys.modules.pop("sb_dummy_plugin", None)


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        methods.register_method("cnn", family="x")(lambda **kw: None)
    for bad in ("a*b", "a:b", "a[b]", ""):
        with pytest.raises(ValueError, match="invalid method name"):
            methods.register_method(bad, family="x")
    with pytest.raises(ValueError, match="prefix"):
        methods.register_prefix("timm", lambda rest: None, family="x", hint="timm<x>")


def test_train_recipe_is_frozen():
    with pytest.raises(AttributeError):
        TrainRecipe().lr = 1.0  # type: ignore[misc]


# ---- display styles ---------------------------------------------------------------------------

@pytest.fixture
def temp_methods():
    """Register throw-away methods; removed from the registry afterwards."""
    names: list[str] = []

    def add(name: str, **meta) -> None:
        methods.register_method(name, **meta)(lambda in_channels=1, num_classes=10: None)
        names.append(name)

    yield add
    for name in names:
        methods.registry._REGISTRY.pop(name, None)


def test_a_declared_style_is_what_figures_use(temp_methods):
    from scaleqbench.bench.report import plots

    assert methods.style_of("sesn") == MethodStyle(OKABE_ITO["blue"], "^")
    declared = MethodStyle("#123456", "o")
    temp_methods("sb_styled", family="test", style=declared)
    assert methods.style_of("sb_styled") == declared
    drawn = plots.Palette(["cnn", "sb_styled", "sesn"]).style("sb_styled")
    assert (drawn.color, drawn.marker) == ("#123456", "o")


def test_every_builtin_method_has_its_own_style():
    styles = {n: methods.style_of(n) for n in methods.list_methods()}
    assert len(set(styles.values())) == len(styles), styles


def test_a_method_without_a_style_gets_a_stable_derived_one(temp_methods):
    temp_methods("sb_plain", family="test")
    style = methods.style_of("sb_plain")
    # derived styles keep off the declared markers and the family colours
    assert style.marker in DERIVED_MARKERS and style.marker not in DECLARED_MARKERS
    assert style.color != OKABE_ITO["vermillion"]
    # a family with a house colour keeps it; the marker still follows the name
    assert methods.style_of("fourier").color == OKABE_ITO["vermillion"]
    # the same in another process (Python's own hash() is salted per process), and neither
    # a timm name nor an unknown one needs its model (timm is not imported)
    code = ("import sys; from scaleqbench import methods; "
            "print([tuple(methods.style_of(n).__dict__.values()) for n in "
            "('sb_plain', 'timm:resnet18', 'fourier')], 'timm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    here = [tuple(methods.style_of(n).__dict__.values())
            for n in ("sb_plain", "timm:resnet18", "fourier")]
    assert out.strip() == f"{here} False"


def test_different_unknown_names_usually_differ():
    names = [f"sb_plugin_{i}" for i in range(20)]
    styles = [methods.style_of(n) for n in names]
    same = sum(a == b for i, a in enumerate(styles) for b in styles[i + 1:])
    assert same <= 0.05 * len(names) * (len(names) - 1) / 2
    # a report that holds two that hash alike still draws them apart
    from scaleqbench.bench.report import plots

    palette = plots.Palette(names)
    drawn = {(palette.style(n).color, palette.style(n).marker) for n in names}
    assert len(drawn) == len(names)


# ---- plugins ----------------------------------------------------------------------------------

def test_a_broken_plugin_warns_once_and_the_others_still_list(tmp_path, monkeypatch, caplog):
    (tmp_path / "sb_good_plugin.py").write_text(textwrap.dedent('''
        from scaleqbench.methods import register_method

        @register_method("sb_good", family="test")
        def build(in_channels=1, num_classes=10):
            raise NotImplementedError
    '''))
    (tmp_path / "sb_broken_plugin.py").write_text("raise RuntimeError('plugin exploded')\n")
    eps = [importlib.metadata.EntryPoint("broken", "sb_broken_plugin", methods.ENTRY_POINT_GROUP),
           importlib.metadata.EntryPoint("good", "sb_good_plugin", methods.ENTRY_POINT_GROUP)]

    def entry_points(**kw):
        assert kw == {"group": methods.ENTRY_POINT_GROUP}
        return eps

    try:
        with monkeypatch.context() as mp:
            mp.syspath_prepend(str(tmp_path))
            mp.setattr(importlib.metadata, "entry_points", entry_points)
            with caplog.at_level(logging.WARNING, logger="scaleqbench.methods.registry"):
                methods.reload_plugins()
                names = methods.list_methods()  # no second attempt, no second warning
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        msg = warnings[0].getMessage()
        assert "'broken'" in msg and "sb_broken_plugin" in msg and "plugin exploded" in msg
        assert "sb_good" in names and "cnn" in names and "fourier" in names
    finally:
        methods.registry._REGISTRY.pop("sb_good", None)
        for mod in ("sb_good_plugin", "sb_broken_plugin"):
            sys.modules.pop(mod, None)
        methods.reload_plugins()


# ---- import structure -------------------------------------------------------------------------

def _imports(path: Path, package: str) -> set[str]:
    """Modules a file imports anywhere (function bodies too), with import_module("...") calls."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative: resolve against the file's package
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + [node.module])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.add(node.args[0].value)
    return found


def test_no_import_cycle_through_the_registry():
    root = Path(methods.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        parts = ["scaleqbench", "methods", *rel.parts]
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        graph[name] = set()
        package = name if is_pkg else name.rsplit(".", 1)[0]
        graph[name] = _imports(path, package)
    for name in graph:
        graph[name] = {m for m in graph[name] if m in graph and m != name}

    start = "scaleqbench.methods.registry"
    seen, stack = set(), [start]
    while stack:  # everything the registry reaches must not lead back to it
        for nxt in graph[stack.pop()]:
            assert nxt != start, f"import cycle: the registry reaches a module importing it ({nxt})"
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    assert seen <= {"scaleqbench.methods.style"}, f"the registry imports method code: {seen}"
