"""The method registry: names, wildcards, configs, recipes, timm, and entry-point plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from scalebench import methods
from scalebench.methods import TrainRecipe, UnknownConfigError, UnknownMethodError


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


def test_recipes_default_to_the_protocol():
    entry = methods.get_method("cnn")
    r = entry.recipe("mnist")
    assert (r.optimizer, r.lr, r.milestones, r.gamma, r.epochs, r.batch_size) == \
        ("adam", 1e-2, (20, 40), 0.1, 60, 128)
    assert entry.recipe("stl10").optimizer == "sgd"
    squeezed = r.with_epochs(6)
    assert squeezed.epochs == 6 and squeezed.milestones == (2, 4)


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
        from scalebench.methods import register_method, TrainRecipe

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
    (dist / "entry_points.txt").write_text("[scalebench.methods]\ndummy = sb_dummy_plugin\n")
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
    with pytest.raises(ValueError, match="invalid method name"):
        methods.register_method("a*b", family="x")


def test_train_recipe_is_frozen():
    with pytest.raises(AttributeError):
        TrainRecipe().lr = 1.0  # type: ignore[misc]
