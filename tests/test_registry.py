"""The method registry: names, wildcards, cards and configs (every built-in one pinned), the
"did you mean" hint, display styles, timm, and the import structure. Plugins:
tests/test_plugins.py; training recipes: tests/test_recipes.py."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scaleqbench import methods
from scaleqbench.bench.run import recipes
from scaleqbench.methods import MethodCard, MethodStyle, UnknownConfigError, UnknownMethodError
from scaleqbench.methods.suggest import closest, did_you_mean
from scaleqbench.methods.style import BUILTIN_STYLES, DERIVED_SLOTS, FAMILY_HUES, OTHER_HUES


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


def test_timm_models_pass_channels_and_classes_and_take_small_inputs():
    model = methods.create("timm:resnet18", in_channels=3, num_classes=7)
    for size in (8, 28, 49):
        assert model(torch.randn(2, 3, size, size)).shape == (2, 7)
    feats = model.features(torch.randn(2, 3, 28, 28))
    assert len(feats) >= 4 and all(f.dim() == 4 for f in feats.values())
    with pytest.raises(UnknownMethodError, match="timm has no model"):
        methods.create("timm:resnet_does_not_exist")


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        methods.register_method("cnn", MethodCard(family="x"))(lambda **kw: None)
    for bad in ("a*b", "a:b", "a[b]", ""):
        with pytest.raises(ValueError, match="invalid method name"):
            methods.register_method(bad, MethodCard(family="x"))
    with pytest.raises(ValueError, match="prefix"):
        methods.register_prefix("timm", lambda rest: None, family="x", hint="timm<x>")


# ---- every built-in method as pinned --------------------------------------------------------

PINNED = json.loads((Path(__file__).parent / "fixtures" / "registry" /
                     "builtin_methods.json").read_text())


def _jsonable(value):
    """A config or recipe value as the JSON fixture holds it (tuples as lists)."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _resolved(name: str) -> dict:
    """What the registry and the recipes resolve for built-in method ``name``, as pinned."""
    e = methods.get_method(name)
    card = dataclasses.asdict(e.card)
    card["style"] = None if e.style is None else [e.style.color, e.style.marker]
    losses = {recipes.loss_for(name, c).__name__ for c in e.configs}
    assert len(losses) == 1, f"{name}: one loss for every config, got {losses}"
    return {
        "card": {**card, "alias_of": e.alias_of},
        "loss": losses.pop(),
        "configs": {c: {"config": _jsonable(e.config(c)),
                        "recipe": _jsonable(dataclasses.asdict(recipes.recipe_for(name, c)))}
                    for c in e.configs},
    }


def test_the_pinned_methods_are_the_builtin_ones():
    builtin = [n for n in methods.list_methods() if methods.get_method(n).source == "builtin"]
    assert builtin == sorted(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_every_builtin_config_and_recipe_resolves_as_pinned(name):
    # tests/fixtures/registry/builtin_methods.json: every built-in method's card, resolved
    # configs, training recipes and loss, written once from the registry before the recipes
    # moved out of the models package; a change to any of them must be deliberate
    got = _resolved(name)
    want = PINNED[name]
    for config in want["configs"]:
        assert got["configs"].get(config) == want["configs"][config], f"{name}[{config}]"
    assert got == want


def test_a_card_describes_and_checks_itself():
    card = MethodCard(family="test", paper="Me 2026", year=2026, input="native")
    assert (card.family, card.input, card.style) == ("test", "native", None)
    with pytest.raises(ValueError, match="input must be one of"):
        MethodCard(family="test", input="crop")
    with pytest.raises(ValueError, match="family"):
        MethodCard(family="")
    with pytest.raises(TypeError, match="MethodCard"):
        methods.register_method("sb_no_card", {"family": "test"})  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.year = 2027  # type: ignore[misc]


def test_an_entry_reads_its_card_and_its_builder_describes_it(temp_methods):
    temp_methods("sb_carded", family="test", paper="Me 2026", year=2026, reference="me/x@1:y.py")
    e = methods.get_method("sb_carded")
    assert (e.family, e.paper, e.year, e.reference, e.input) == (
        "test", "Me 2026", 2026, "me/x@1:y.py", "pad")
    assert e.configs == {"mnist": {}} and e.config("mnist") == {}
    # registered by a script (this test module): its module is its source
    assert e.source == __name__
    assert methods.get_method("cnn").description.startswith("SESN's baselines")
    assert methods.get_method("cnn").source == methods.BUILTIN


def test_unregister_lets_a_name_be_registered_again(temp_methods):
    temp_methods("sb_again", family="test")
    methods.unregister_method("sb_again")
    assert "sb_again" not in methods.list_methods()
    temp_methods("sb_again", family="other")  # a new builder under the freed name
    assert methods.get_method("sb_again").family == "other"
    methods.unregister_method("sb_never_registered")  # a no-op


# ---- "did you mean" ---------------------------------------------------------------------------

def test_did_you_mean_offers_the_closest_name_spelled_as_typed():
    names = ["sesn", "sesn_vector", "disco", "cnn"]
    assert closest("sesm", names) == "sesn"
    assert closest("zzzz", names) is None
    assert did_you_mean("dsico", names) == " (did you mean 'disco'?)"
    assert did_you_mean("zzzz", names) == ""
    assert did_you_mean("resnet81", ["resnet18"], spell=lambda m: f"timm:{m}") == (
        " (did you mean 'timm:resnet18'?)")
    # a stricter cutoff offers nothing for a loose match
    assert closest("cn", names) == "cnn" and closest("cn", names, cutoff=0.9) is None


def test_timm_and_the_registry_phrase_the_hint_alike():
    with pytest.raises(UnknownMethodError) as err:
        methods.get_method("timm:resnet81")
    assert "(did you mean 'timm:resnet18'?)" in str(err.value)
    with pytest.raises(UnknownMethodError) as err:
        methods.get_method("sesm")
    assert "(did you mean 'sesn'?)" in str(err.value)


# ---- display styles ---------------------------------------------------------------------------

@pytest.fixture
def temp_methods():
    """Register throw-away methods; removed from the registry afterwards."""
    names: list[str] = []

    def add(name: str, **card) -> None:
        methods.register_method(name, MethodCard(**card))(lambda in_channels=1, num_classes=10: None)
        names.append(name)

    yield add
    for name in names:
        methods.unregister_method(name)


def test_a_declared_style_is_what_figures_use(temp_methods):
    from scaleqbench.bench.report import plots

    assert methods.style_of("sesn") == BUILTIN_STYLES["sesn"]
    declared = MethodStyle("#123456", "o")
    temp_methods("sb_styled", family="test", style=declared)
    assert methods.style_of("sb_styled") == declared
    drawn = plots.Palette(["cnn", "sb_styled", "sesn"]).style("sb_styled")
    assert (drawn.color, drawn.marker) == ("#123456", "o")


def test_every_builtin_method_has_its_own_style():
    styles = {n: methods.style_of(n) for n in methods.list_methods()}
    assert len(set(styles.values())) == len(styles), styles
    # a marker of its own, and a colour of its family's hue range
    assert len({s.marker for s in styles.values()}) == len(styles)
    for name, style in styles.items():
        assert style.color in FAMILY_HUES[methods.get_method(name).family], name


def test_a_method_without_a_style_gets_a_stable_derived_one(temp_methods):
    temp_methods("sb_plain", family="test")
    style = methods.style_of("sb_plain")
    # a family without a hue range draws from the other colours, never a built-in style
    assert style.color in OTHER_HUES and style not in BUILTIN_STYLES.values()
    # a family with a hue range keeps to it; the slot still follows the name
    temp_methods("sb_fourierish", family="fourier")
    fourierish = methods.style_of("sb_fourierish")
    assert fourierish.color in FAMILY_HUES["fourier"]
    assert (fourierish.color, fourierish.marker) in DERIVED_SLOTS["fourier"]
    assert fourierish not in BUILTIN_STYLES.values()
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
    helpers = {"scaleqbench.methods." + m
               for m in ("style", "method_card", "plugins", "suggest")}
    assert seen <= helpers, f"the registry imports method code: {seen - helpers}"
