"""Method plugins (methods/plugins.py): real distributions written into a temporary folder and
found through their entry points -- discovered with their distribution and version, the
former group still read with one warning per plugin, and a plugin that fails at import
(an exception, ``sys.exit()``, any ``BaseException``) reported in one line without ending
the command."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import textwrap

import pytest
from plugin_support import installed, tiny_plugin, write_plugin

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.run.recipes import loss_for, recipe_for

NEW, OLD = methods.ENTRY_POINT_GROUP, methods.LEGACY_ENTRY_POINT_GROUP
LOGGER = "scaleqbench.methods.plugins"

def tiny(name: str) -> str:
    """A plugin module registering a tiny model as ``name``."""
    return tiny_plugin(name)


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno >= logging.WARNING]


def test_a_plugin_registers_its_method_recipe_and_loss_with_its_version(tmp_path, monkeypatch):
    write_plugin(tmp_path, "sb-dummy-plugin", "0.1.2", {"sb_dummy_plugin": tiny("dummy_plugin") + textwrap.dedent('''
    from scaleqbench.bench.run.recipes import TrainRecipe, register_recipes

    def halved(model, x, y):
        logits = model(x)
        return 0.5 * F.cross_entropy(logits, y), logits

    register_recipes("dummy_plugin", {"quick": TrainRecipe(lr=0.5, epochs=1)}, loss=halved)
    ''')}, {NEW: {"dummy": "sb_dummy_plugin"}})
    with installed(monkeypatch, tmp_path, ["sb_dummy_plugin"]):
        assert "dummy_plugin" in methods.list_methods()
        entry = methods.get_method("dummy_plugin")
        assert entry.source == "sb-dummy-plugin 0.1.2"
        assert recipe_for("dummy_plugin", "quick").lr == 0.5
        assert loss_for("dummy_plugin", "mnist").__name__ == "halved"
        model = methods.create("dummy_plugin", config="quick")
        assert model.conv.out_channels == 2 and isinstance(model, methods.ScaleModel)
    assert "dummy_plugin" not in methods.list_methods()


def test_the_former_group_loads_with_one_warning_per_plugin(tmp_path, monkeypatch, caplog):
    write_plugin(tmp_path, "sb-old-a", "1.0", {"sb_old_a": tiny("sb_old_a")},
                 {OLD: {"a": "sb_old_a"}})
    write_plugin(tmp_path, "sb-old-b", "2.0", {"sb_old_b": tiny("sb_old_b")},
                 {OLD: {"b": "sb_old_b"}})
    # a package that declares itself in both groups loads once, from the new one, silently
    write_plugin(tmp_path, "sb-both", "3.0", {"sb_both": tiny("sb_both")},
                 {NEW: {"both": "sb_both"}, OLD: {"both": "sb_both"}})
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with installed(monkeypatch, tmp_path, ["sb_old_a", "sb_old_b", "sb_both"]):
            methods.reload_plugins()  # a second scan warns no more
            assert {"sb_old_a", "sb_old_b", "sb_both"} <= set(methods.list_methods())
            assert methods.get_method("sb_old_b").source == "sb-old-b 2.0"
            said = warnings_of(caplog)
    assert len(said) == 2, said
    for plugin, dist in (("'a'", "sb-old-a 1.0"), ("'b'", "sb-old-b 2.0")):
        [line] = [m for m in said if plugin in m]
        assert dist in line and f"'{OLD}'" in line and f'"{NEW}"' in line
        assert "\n" not in line


BROKEN = {
    "sb_exits": "import sys\nsys.exit(3)\n",
    "sb_base": "raise BaseException('deep trouble')\n",
    "sb_raises": "raise RuntimeError('plugin exploded\\n  on two lines')\n",
}


def test_a_plugin_that_fails_at_import_is_one_warning_and_the_command_goes_on(
        tmp_path, monkeypatch, caplog, capsys):
    modules = {**BROKEN, "sb_good_plugin": tiny("sb_good")}
    eps = {NEW: {"exits": "sb_exits", "base": "sb_base", "raises": "sb_raises",
                 "good": "sb_good_plugin"}}
    write_plugin(tmp_path, "sb-mixed", "0.3", modules, eps)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        with installed(monkeypatch, tmp_path, list(modules)):
            caplog.clear()
            methods.reload_plugins()
            names = methods.list_methods()  # no second attempt, no second warning
            said = warnings_of(caplog)
            # a command whose look-up loads them (again) runs to its end
            methods.registry._plugins_loaded = False
            assert cli.main(["list", "methods"]) == 0
            assert "sb_good" in capsys.readouterr().out
            assert len(warnings_of(caplog)) == 2 * len(BROKEN)
    assert "sb_good" in names and "cnn" in names and "fourier" in names
    assert len(said) == 3, said
    why = {"'exits'": "sys.exit(3)", "'base'": "BaseException: deep trouble",
           "'raises'": "RuntimeError: plugin exploded on two lines"}
    for plugin, reason in why.items():
        [line] = [m for m in said if plugin in m]
        assert reason in line and "sb-mixed 0.3" in line and "\n" not in line


def test_ctrl_c_while_a_plugin_loads_still_stops_the_command(tmp_path, monkeypatch):
    write_plugin(tmp_path, "sb-interrupted", "0.1",
                 {"sb_interrupted": "raise KeyboardInterrupt\n"}, {NEW: {"i": "sb_interrupted"}})
    with pytest.raises(KeyboardInterrupt):
        with installed(monkeypatch, tmp_path, ["sb_interrupted"]):
            pass


def test_entry_points_of_both_groups_are_read(tmp_path, monkeypatch, caplog):
    """The loader asks importlib.metadata for exactly the two groups, new first."""
    (tmp_path / "sb_good_plugin.py").write_text(tiny("sb_good"))
    asked = []

    def entry_points(**kw):
        asked.append(kw)
        if kw == {"group": NEW}:
            return [importlib.metadata.EntryPoint("good", "sb_good_plugin", NEW)]
        return []

    try:
        with monkeypatch.context() as mp:
            mp.syspath_prepend(str(tmp_path))
            mp.setattr(importlib.metadata, "entry_points", entry_points)
            methods.reload_plugins()
            entry = methods.get_method("sb_good")
        assert asked == [{"group": NEW}, {"group": OLD}]
        # an entry point of no installed distribution: its module names the source
        assert entry.source == "sb_good_plugin"
    finally:
        methods.unregister_method("sb_good")
        sys.modules.pop("sb_good_plugin", None)
        methods.reload_plugins()


def test_a_plugin_imported_before_the_first_look_up_still_carries_its_version(tmp_path,
                                                                              monkeypatch):
    write_plugin(tmp_path, "sb-early", "0.4", {"sb_early": tiny("sb_early")},
                 {NEW: {"early": "sb_early"}})
    methods.list_methods()  # the loader has run: the plugin is not on the path yet
    try:
        with monkeypatch.context() as mp:
            mp.syspath_prepend(str(tmp_path))
            import sb_early  # noqa: F401  (as a script or the plugin's own tests would)

            assert methods.get_method("sb_early").source == "sb_early"  # not loaded yet
            methods.reload_plugins()
            assert methods.get_method("sb_early").source == "sb-early 0.4"
    finally:
        methods.unregister_method("sb_early")
        sys.modules.pop("sb_early", None)
        methods.reload_plugins()
