"""A run's identity is what determines its result, and a record that no longer matches is stale.

The run id of a resolved spec hashes the protocol, method, seed, config values and training
recipe (never the config's name nor the options as typed), stably across processes; recipe
overrides make another run and another row; records of earlier schemas are migrated
without recomputing; a stale record is marked on the leaderboard, moved aside by ``bench
run`` (never deleted) and run again -- end to end with a plugin installed from a temporary
folder whose config changes between two ``bench run``s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fourier_helpers import fourier_paths
from plugin_support import installed, tiny_plugin, write_plugin

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.launch.sweep import plan_launch, save_sweep, load_sweep
from scaleqbench.bench.run.recipes import recipe_for
from scaleqbench.bench.run.resolve import apply_recipe, resolve, todays_resolution
from scaleqbench.bench.spec import Resolved, RunSpec
from scaleqbench.bench.store.collection import load_folders
from scaleqbench.bench.store.identity import mark_stale, record_identity
from scaleqbench.bench.store.record import RunRecord, protocol_key
from scaleqbench.bench.store.run_store import RunStore

# the reference run of version 0.1.0 (record schema 3)
REFERENCE = Path(__file__).resolve().parent / "fixtures" / "schema3"
TINY = ["--epochs", "1", "--limit-train", "40", "--limit-eval", "20", "--quiet", "--no-report"]
#: a fixed resolution: the scheme's pinned ids below do not depend on today's registry
FIXED = Resolved.of({"channels": (16, 32, 48), "dropout": 0.3, "hidden": 128},
                    {"optimizer": "adam", "lr": 0.005, "epochs": 8, "batch_size": 64,
                     "milestones": (6,)})


# ---- the run id -----------------------------------------------------------------------------

def test_a_resolved_spec_hashes_what_it_computes_with_and_keeps_its_id():
    """The scheme, pinned: a changed id would make every resumed sweep recompute."""
    assert RunSpec("cnn", resolved=FIXED).run_id == "cnn-s0-0e6eac36e85a"
    assert RunSpec("cnn", seed=2, epochs=3, resolved=FIXED).run_id == "cnn-s2-13b37888773b"
    other = Resolved.of({**dict(FIXED.config), "channels": (8, 8, 8)}, dict(FIXED.recipe))
    assert RunSpec("cnn", resolved=other).run_id == "cnn-s0-153063b4b2e8"
    # not the options as typed, nor the place it runs: only what it computes with
    same = RunSpec("cnn", method_kwargs={"channels": (16, 32, 48)}, resolved=FIXED,
                   experiment="elsewhere", device="cpu")
    assert same.run_id == RunSpec("cnn", resolved=FIXED).run_id


def test_an_option_typed_equal_to_its_default_is_the_same_run():
    plain = resolve(RunSpec("cnn"))
    typed = resolve(RunSpec("cnn", method_kwargs={"channels": [16, 32, 48]}))
    assert typed == plain and typed.run_id == plain.run_id and typed.label == "cnn"
    assert dict(plain.resolved.config) == methods.get_method("cnn").config("quick")
    assert dict(plain.resolved.recipe)["lr"] == recipe_for("cnn", "quick").lr
    # a builder's own default (not in the config) is no option either
    assert resolve(RunSpec("cnn", method_kwargs={"arch": "mnist"})) == plain
    narrow = resolve(RunSpec("cnn", method_kwargs={"channels": (8, 8, 8)}))
    assert narrow.run_id != plain.run_id and narrow.label == "cnn[channels=(8, 8, 8)]"
    # 2 and 2.0 are not the same value (an integer and a float may compute differently)
    assert resolve(RunSpec("cnn", method_kwargs={"hidden": 128.0})).run_id != plain.run_id


def test_the_run_id_is_the_same_in_another_process():
    here = resolve(RunSpec("cnn", seed=3, recipe_overrides={"lr": 0.01})).run_id
    code = ("from scaleqbench.bench.run.resolve import resolve\n"
            "from scaleqbench.bench.spec import RunSpec\n"
            "print(resolve(RunSpec('cnn', seed=3, recipe_overrides={'lr': 0.01})).run_id)")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()[-1]
    assert there == here


def test_recipe_overrides_make_another_run_shown_in_its_label():
    plain = resolve(RunSpec("cnn"))
    tuned = resolve(RunSpec("cnn", recipe_overrides={"lr": 0.01, "batch_size": 32}))
    assert tuned.run_id != plain.run_id
    assert tuned.label == "cnn {batch_size=32,lr=0.01}"
    assert protocol_key(RunRecord.for_spec(tuned)) != protocol_key(RunRecord.for_spec(plain))
    recipe = dict(tuned.resolved.recipe)
    assert (recipe["lr"], recipe["batch_size"]) == (0.01, 32)
    # an override equal to the method's own value is dropped: the plain run, the plain row
    same = resolve(RunSpec("cnn", recipe_overrides={"lr": recipe_for("cnn", "quick").lr}))
    assert same == plain and same.label == "cnn"
    # per method: fourier's quick recipe has its own rate
    fourier = resolve(RunSpec("fourier", recipe_overrides={"optimizer": "adamw"}))
    assert fourier.label == "fourier"  # fourier is trained with adamw already


def test_an_epochs_override_scales_the_schedule_as_epochs_does():
    quick = recipe_for("cnn", "quick")
    assert apply_recipe(quick, {"epochs": 4}) == quick.with_epochs(4)
    assert apply_recipe(quick, {"epochs": 4, "milestones": (1,)}).milestones == (1,)
    assert apply_recipe(quick, {"lr": 1}).lr == 1.0 and isinstance(
        apply_recipe(quick, {"lr": 1}).lr, float)
    by_flag = resolve(RunSpec("cnn", epochs=4)).resolved.recipe
    by_recipe = resolve(RunSpec("cnn", recipe_overrides={"epochs": 4})).resolved.recipe
    assert by_flag == by_recipe


def test_a_resolved_spec_round_trips_through_json():
    spec = resolve(RunSpec("cnn", seed=1, method_kwargs={"channels": (8, 8, 8)},
                           recipe_overrides={"milestones": (2, 4)}))
    data = json.loads(json.dumps(spec.to_json()))
    back = RunSpec.from_json(data)
    assert back == spec and back.run_id == spec.run_id and back.resolved == spec.resolved
    assert data["recipe_overrides"] == {"milestones": [2, 4]}
    with pytest.raises(ValueError, match="resolved"):
        RunSpec.from_json({**data, "resolved": {"config": {}}})


# ---- migrated records -----------------------------------------------------------------------

def test_the_reference_records_migrate_without_recomputing_and_keep_their_ids():
    for path in sorted((REFERENCE / "runs").glob("*.json")):
        stored = json.loads(path.read_text())
        rec = RunRecord.from_json(path.read_text(), path)
        assert rec.run_id == path.stem == rec.spec.run_id  # ids as they were
        assert rec.test_acc == stored["test_acc"] and rec.recipe == stored["recipe"]
        assert rec.provenance["migrated_from_schema"] == stored["schema_version"]
        assert "the scaleqbench version that made it" in rec.provenance["unknown"]
        assert rec.config_values == methods.get_method(rec.method_name).config("quick")
        assert rec.provenance["inferred"] and record_identity(rec) is not None
        # the quick preset's recipe changed since (8 epochs, fourier 6 -> 3): every one is stale
        assert todays_resolution(rec.spec) != record_identity(rec)
        assert dict(todays_resolution(rec.spec).recipe)["epochs"] == 3 != rec.recipe["epochs"]


def test_the_reference_leaderboard_still_renders(capsys):
    assert cli.main(["leaderboard", str(REFERENCE), "--strict"]) == 0
    out = capsys.readouterr()
    rows = [line for line in out.out.splitlines() if line.startswith("| mnist-res")]
    assert len(rows) == 12 and all("(stale)" in row for row in rows)  # today's recipe differs
    assert "12 record(s) are stale" in out.err and "recipe epochs 8 -> 3" in out.err


# ---- stale records --------------------------------------------------------------------------

def made(spec: RunSpec, when: str, acc: float = 0.5) -> RunRecord:
    return RunRecord.for_spec(spec, status="ok", test_acc=acc, params=10, config="quick",
                              finished_at=when)


def test_a_record_made_with_other_values_than_a_newer_one_is_marked_stale(tmp_path):
    old = Resolved.of({"channels": (16, 32, 48)}, {"lr": 0.005})
    new = Resolved.of({"channels": (8, 8, 8)}, {"lr": 0.005})
    a = made(RunSpec("mynet", seed=0, resolved=old), "2026-01-01T00:00:00")
    b = made(RunSpec("mynet", seed=1, resolved=new), "2026-02-01T00:00:00")
    unknown = made(RunSpec("mynet", seed=2), "2025-01-01T00:00:00")  # no identity: never stale
    assert mark_stale([a, b, unknown]) == [a]
    assert a.stale == "config channels (16, 32, 48) -> (8, 8, 8) in a newer record"
    assert protocol_key(a).method == "mynet (stale)" and protocol_key(b).method == "mynet"
    # against today's registry too, where the reader can resolve
    c = made(RunSpec("mynet", resolved=new), "2026-03-01T00:00:00")
    assert mark_stale([c], today=lambda spec: old) == [c] and c.stale.endswith("today")
    for rec in (a, b):
        rec.stale = None
        RunStore(tmp_path).write(rec)
    found = load_folders([tmp_path])
    assert [r.seed for r in found.records if r.stale] == [0]
    assert any("1 record(s) are stale" in n and "(stale)" in n for n in found.notes)


def test_bench_leaderboard_shows_a_stale_record_in_a_marked_row(tmp_path, capsys):
    spec = resolve(RunSpec("cnn", experiment=tmp_path.name))
    older = Resolved.of({**dict(spec.resolved.config), "hidden": 64}, dict(spec.resolved.recipe))
    stale = RunRecord.for_spec(RunSpec("cnn", seed=1, resolved=older), status="ok",
                               test_acc=0.2, params=10, finished_at="2026-01-01T00:00:00")
    RunStore(tmp_path).write(stale)
    RunStore(tmp_path).write(RunRecord.for_spec(spec, status="ok", test_acc=0.9, params=10,
                                                finished_at="2026-01-02T00:00:00"))
    assert cli.main(["leaderboard", str(tmp_path)]) == 0
    out = capsys.readouterr()
    rows = [ln for ln in out.out.splitlines() if ln.startswith("| mnist-res")]
    assert len(rows) == 2 and sum("cnn (stale)" in r for r in rows) == 1
    assert "config hidden 64 -> 128" in out.err and "record(s) are stale" in out.err


def test_bench_run_moves_a_stale_record_aside_and_refiles_an_old_one(tmp_path, caplog):
    store = RunStore(tmp_path)
    fresh = [resolve(RunSpec("cnn", seed=s, experiment=tmp_path.name)) for s in (0, 1)]
    older = Resolved.of({**dict(fresh[0].resolved.config), "hidden": 64},
                        dict(fresh[0].resolved.recipe))
    stale_spec = RunSpec("cnn", seed=0, resolved=older, experiment=tmp_path.name)
    stale_path = store.write(made(stale_spec, "2026-01-01T00:00:00"))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / f"{stale_spec.run_id}.pt").write_bytes(b"weights")
    # seed 1: a record of an earlier version (unresolved spec, values recorded), same values
    old = RunRecord.for_spec(RunSpec("cnn", seed=1, experiment=tmp_path.name), status="ok",
                             test_acc=0.7, config="quick",
                             config_values=dict(fresh[1].resolved.config),
                             recipe=dict(fresh[1].resolved.recipe))
    old_path = store.write(old)
    save_sweep(tmp_path, [stale_spec, old.spec], launcher="local")
    plan = plan_launch(tmp_path, fresh, "local")
    assert [s.seed for s in plan.todo] == [0] and plan.done == 1
    moved = tmp_path / "runs" / "stale" / stale_path.name
    assert moved.is_file() and not stale_path.exists()  # moved, never deleted
    assert (tmp_path / "checkpoints" / "stale" / f"{stale_spec.run_id}.pt").is_file()
    assert len(plan.notes) == 2
    assert any(f"cnn seed 0 is stale (config hidden 64 -> 128): moved its record to "
               f"runs/stale/{stale_path.name}" in n for n in plan.notes)
    refiled = store.read(fresh[1].run_id)
    assert refiled.ok and refiled.test_acc == 0.7 and refiled.spec == fresh[1]
    assert refiled.provenance["refiled_from"] == old.run_id
    assert (tmp_path / "runs" / "migrated" / old_path.name).is_file()
    # sweep.json keeps one spec per run: the stale spec is replaced
    save_sweep(tmp_path, fresh, launcher="local")
    assert {s.run_id for s in load_sweep(tmp_path)} == {s.run_id for s in fresh}


def test_rerun_moves_a_finished_record_aside_and_runs_it_again(tmp_path):
    store = RunStore(tmp_path)
    spec = resolve(RunSpec("cnn", experiment=tmp_path.name))
    path = store.write(made(spec, "2026-01-01T00:00:00"))
    assert plan_launch(tmp_path, [spec], "local").todo == []
    plan = plan_launch(tmp_path, [spec], "local", rerun=True)
    assert plan.todo == [spec] and plan.done == 0
    assert (tmp_path / "runs" / "stale" / path.name).is_file() and not path.exists()
    assert "--rerun: moved its record to runs/stale/" in plan.notes[0]
    # an interrupted run's per-epoch state is not resumed by --rerun either
    last = tmp_path / "checkpoints" / f"{spec.run_id}.last.pt"
    last.parent.mkdir(exist_ok=True)
    last.write_bytes(b"state")
    assert plan_launch(tmp_path, [spec], "local", rerun=True).todo == [spec]
    assert not last.exists() and (last.parent / "stale" / last.name).is_file()


def test_a_job_computes_what_its_spec_says_whatever_the_registry_says_later(
        tmp_path, cache_dir, monkeypatch):
    """A Slurm task may start after the plugin changed: it builds and trains with its spec's
    resolution, so its record is the run its id names."""
    import dataclasses

    from scaleqbench.bench.run.train import run_one
    from scaleqbench.methods import registry

    spec = resolve(RunSpec("cnn", epochs=1, limit_train=40, limit_eval=20, eq_images=4,
                           recipe_overrides={"batch_size": 16}))
    entry = registry._REGISTRY["cnn"]
    wider = {**entry.configs, "quick": {**entry.configs["quick"], "hidden": 256}}
    monkeypatch.setitem(registry._REGISTRY, "cnn", dataclasses.replace(entry, configs=wider))
    rec = run_one(spec, tmp_path)
    assert rec.ok and rec.run_id == spec.run_id and rec.spec == spec
    assert rec.config_values["hidden"] == 128 and rec.recipe["batch_size"] == 16
    assert todays_resolution(spec) != spec.resolved  # today it would be another run


# ---- end to end: a plugin whose config changes between two `bench run`s ---------------------

def _plugin(root: Path, version: str, width: int) -> Path:
    return write_plugin(root, "sb-stale-tiny", version,
                        {"sb_stale_tiny": tiny_plugin("stale_tiny", width)},
                        {methods.ENTRY_POINT_GROUP: {"stale_tiny": "sb_stale_tiny"}})


def test_a_plugin_whose_config_changed_is_run_again_naming_the_set_aside_record(
        tmp_path, cache_dir, monkeypatch, capsys):
    out = tmp_path / "exp"
    argv = ["run", "--methods", "stale_tiny", "--out", str(out), *TINY]
    with installed(monkeypatch, _plugin(tmp_path / "v1", "0.1.0", 4), ["sb_stale_tiny"]):
        assert cli.main(argv) == 0
        assert cli.main(argv) == 0  # unchanged: done, not recomputed
        assert "1 already done" in capsys.readouterr().out
    [first] = RunStore(out).scan()[0]
    assert first.config_values == {"width": 4} and first.method_source == "sb-stale-tiny 0.1.0"
    assert first.versions["scaleqbench"] and first.spec.resolved.config == (("width", 4),)
    assert "implementation" not in first.versions  # the plugin's model does not describe one
    with installed(monkeypatch, _plugin(tmp_path / "v2", "0.2.0", 2), ["sb_stale_tiny"]):
        assert cli.main(argv) == 0
    text = capsys.readouterr().out
    aside = out / "runs" / "stale" / f"{first.run_id}.json"
    line = next(ln for ln in text.splitlines() if "is stale" in ln)
    assert line == (f"bench run: stale_tiny seed 0 is stale (config width 4 -> 2): moved its "
                    f"record to runs/stale/{first.run_id}.json; running it again")
    assert aside.is_file() and json.loads(aside.read_text())["config_values"] == {"width": 4}
    assert "0 already done" in text and "1 to run" in text
    [second] = RunStore(out).scan()[0]
    assert second.ok and second.run_id != first.run_id and second.params < first.params
    assert second.config_values == {"width": 2} and second.method_source == "sb-stale-tiny 0.2.0"
    assert [s.run_id for s in load_sweep(out)] == [second.run_id]


def test_recipe_overrides_run_show_in_the_row_and_are_another_run(tmp_path, cache_dir, capsys):
    out = tmp_path / "exp"
    assert cli.main(["run", "--methods", "cnn", "--recipe", "lr=0.01,batch_size=32",
                     "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "| cnn {batch_size=32,lr=0.01} " in text
    [tuned] = RunStore(out).scan()[0]
    assert (tuned.recipe["lr"], tuned.recipe["batch_size"]) == (0.01, 32)
    assert tuned.spec.recipe_overrides == (("batch_size", 32), ("lr", 0.01))
    assert cli.main(["run", "--methods", "cnn", "--out", str(out), *TINY]) == 0
    text = capsys.readouterr().out
    assert "0 already done, 1 to run" in text  # another run than the tuned one
    labels = {r.method for r in RunStore(out).scan()[0]}
    assert labels == {"cnn", "cnn {batch_size=32,lr=0.01}"}
    board = (out / "leaderboard.md").read_text()
    assert "| cnn {batch_size=32,lr=0.01} " in board and "| cnn " in board


def test_a_record_names_how_its_model_computed(tmp_path, cache_dir):
    """A model that computes one function more than one way (the ``fourier`` network: its
    CPU kernel or tensor operations) has its run record say which way ran, in ``versions``;
    the way is not part of the run's identity."""
    out = tmp_path / "exp"
    assert cli.main(["run", "--methods", "fourier,fourier[impl=tensor]", "--out", str(out),
                *TINY]) == 0
    records = {r.method: r for r in RunStore(out).scan()[0]}
    ring, mix = fourier_paths()
    assert (records["fourier"].versions["implementation"]
            == f"ring nonlinearity: {ring}; spectral mixing: {mix}")
    assert (records["fourier[impl=tensor]"].versions["implementation"]
            == "ring nonlinearity: tensor operations; spectral mixing: tensor operations")
