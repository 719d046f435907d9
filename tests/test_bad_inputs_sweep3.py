"""The third sweep of new bad inputs: refused ones get one line, a non-zero exit and write
nothing (no folder, no file, no cache entry); options that do nothing where they were given
get one note each and the command goes on; a sweep checks its data sources once, before
anything is written, and builds each run's dataset only when that run is computed.

``tests/robustness_totals.py`` counts ``test_refused`` here and the faults of
tests/test_bad_inputs_sweep3_faults.py.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from faults_support import (  # noqa: F401 - fake_runs: a fixture
    TINY, assert_refused, bench, fake_runs, tree)

pytestmark = pytest.mark.timeout(60)

R = ["run", "--out", "{tmp}/exp-new", "--limit-train", "40", "--limit-eval", "20",
     "--epochs", "1", "--no-report", "--methods", "cnn"]
CFG = ["run", "--out", "{tmp}/exp-new", "--limit-train", "40", "--no-report", "--config"]
EQ = ["equivariance", "--images", "4", "--sizes", "8", "--methods", "cnn"]
PF = ["perf", "--methods", "cnn", "--sizes", "8", "--batch", "2", "--repeats", "1"]

#: sweep files with a value of the wrong type or kind, by name (written by ``layout``)
TOML = {
    "seeds-int": "seeds = 3", "epochs-text": 'epochs = "2"', "datasets-text":
    'datasets = "mnist-res"', "recipe-text": '[recipe]\nlr = "fast"', "seed-typo": "seed = 1",
    "launcher-text": 'launcher = "slurm"', "epochs-float": "epochs = 1.5",
    "limit-bool": "limit_train = true", "methods-int": "methods = [1]",
    "key-twice": 'methods = ["cnn"]\nmethods = ["x"]', "method-name-int":
    "methods = [{name = 3}]", "seeds-many": 'seeds = "0-99999"', "root-int": "data_root = 5",
}

# (id, argv, a phrase the one line holds); "{tmp}" is the case's folder (see ``layout``)
CASES: list[tuple[str, list[str], str]] = [
    # -- odd values of bench run's flags
    ("seeds-trailing-dash", [*R, "--seeds", "0-"], "bad seed '0-'"),
    ("seeds-hex", [*R, "--seeds", "0x10"], "bad seed '0x10'"),
    ("seeds-exponent", [*R, "--seeds", "1e3"], "bad seed '1e3'"),
    ("seeds-one-too-many", [*R, "--seeds", "0-10000"], "at most 10,000"),
    ("method-upper-case", [*R, "--methods", "CNN"], "unknown method 'CNN'"),
    ("option-nan", [*R, "--methods", "cnn[dropout=nan]"], "must be a number"),
    ("option-inf", [*R, "--methods", "cnn[dropout=inf]"], "must be a number"),
    ("option-out-of-range", [*R, "--methods", "cnn[dropout=2.0]"], "cannot be built"),
    ("recipe-negative-lr", [*R, "--recipe", "lr=-1"], "lr must be > 0"),
    ("recipe-nan-lr", [*R, "--recipe", "lr=nan"], "lr must be a number"),
    ("recipe-batch-zero", [*R, "--recipe", "batch_size=0"], "batch_size must be >= 2"),
    ("recipe-optimizer", [*R, "--recipe", "optimizer=foo"], "optimizer must be one of"),
    ("recipe-no-value", [*R, "--recipe", "lr"], "is not key=value"),
    ("recipe-epochs-zero", [*R, "--recipe", "epochs=0"], "epochs must be >= 1"),
    ("device-negative-index", [*R, "--device", "cuda:-1"], "unknown --device 'cuda:-1'"),
    ("device-empty", [*R, "--device", ""], "unknown --device ''"),
    ("dataset-leading-space", [*R, "--dataset", " mnist-res"], "did you mean 'mnist-res'"),
    ("launcher-config-local", [*R, "--launcher-config", "{tmp}/afile"],
     "only apply to --launcher slurm"),
    ("precision-tf32-cpu", [*R, "--precision", "tf32", "--device", "cpu"], "is a CUDA mode"),
    ("log-unknown", [*R, "--log", "foo"], "unknown logger 'foo'"),
    ("out-broken-link", [*R, "--out", "{tmp}/dangling"], "is a broken link"),
    # -- a sweep file with values of the wrong type
    *[(f"toml-{name}", [*CFG, f"{{tmp}}/{name}.toml"], f"{name}.toml: ") for name in TOML],
    ("toml-binary", [*CFG, "{tmp}/binary.toml"], "cannot read it"),
    ("toml-folder", [*CFG, "{tmp}/d"], "cannot read it"),
    # -- data sources: refused, and nothing made under --data-root, the cache or --out
    ("data-root-empty", ["data", "build", "mnist-res", "--source", "torchvision",
                         "--data-root", "{tmp}/emptyroot"], "MNIST is not under"),
    ("data-root-a-file", ["data", "build", "mnist-res", "--source", "torchvision",
                          "--data-root", "{tmp}/afile"], "MNIST is not under"),
    ("data-root-missing", ["data", "build", "mnist-scale", "--source", "torchvision",
                           "--data-root", "{tmp}/missing/root"], "MNIST is not under"),
    ("data-stl10-missing-root", ["data", "build", "stl10", "--source", "torchvision",
                                 "--data-root", "{tmp}/missing/stl"], "STL-10 is not under"),
    ("data-stl10-res-empty-root", ["data", "build", "stl10-res", "--source", "torchvision",
                                   "--data-root", "{tmp}/emptyroot"], "STL-10 is not under"),
    ("run-root-empty", [*R, "--source", "torchvision", "--data-root", "{tmp}/emptyroot"],
     "MNIST is not under"),
    ("run-stl10-missing-root", [*R, "--dataset", "stl10", "--source", "torchvision",
                                "--data-root", "{tmp}/missing/stl"], "STL-10 is not under"),
    ("eq-root-empty", [*EQ, "--source", "torchvision", "--data-root", "{tmp}/emptyroot"],
     "MNIST is not under"),
    # -- the other commands
    ("eq-checkpoint-empty-file", ["equivariance", "--checkpoint", "{tmp}/empty.pt"],
     "not a scaleqbench checkpoint"),
    ("eq-operator-empty", [*EQ, "--operator", ""], "--operator takes"),
    ("eq-images-negative", [*EQ, "--images", "-1"], "--images must be >= 1"),
    ("eq-size-full", [*EQ, "--sizes", "28"], "out of range 8..27"),
    ("perf-out-empty", [*PF, "--out", ""], "--out is empty"),
    ("leaderboard-out-empty", ["leaderboard", "{tmp}/exp", "--out", ""], "--out is empty"),
    ("report-out-empty", ["report", "{tmp}/exp", "--out", ""], "--out is empty"),
    ("status-a-file", ["status", "{tmp}/afile"], "cannot read"),
]


@pytest.fixture(scope="module")
def layout(tmp_path_factory, cache_dir) -> Path:
    from scaleqbench.bench.launch.sweep import save_sweep
    from scaleqbench.bench.spec import RunSpec
    from scaleqbench.bench.store.record import RunRecord
    from scaleqbench.bench.store.run_store import RunStore

    root = tmp_path_factory.mktemp("bad-inputs-3")
    spec = RunSpec("cnn", epochs=1, limit_train=40, limit_eval=20)
    RunStore(root / "exp").write(RunRecord.for_spec(spec, status="ok", test_acc=0.5, params=1))
    save_sweep(root / "exp", [spec], launcher="local")
    for name in ("emptyroot", "d"):
        (root / name).mkdir()
    (root / "afile").write_text("a regular file\n")
    (root / "empty.pt").write_bytes(b"")
    (root / "dangling").symlink_to(root / "nowhere")
    for name, text in TOML.items():
        (root / f"{name}.toml").write_text(text + "\n")
    (root / "binary.toml").write_bytes(b'methods = ["cnn"]\n\xff\xfe')
    return root


@pytest.mark.parametrize("argv, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused(argv, phrase, layout, cache_dir, capsys, caplog, monkeypatch, recwarn):
    monkeypatch.chdir(layout)
    argv = [a.replace("{tmp}", str(layout)) for a in argv]
    before, cached = tree(layout), tree(cache_dir)
    caplog.set_level(logging.WARNING)
    code = bench(*argv, "--quiet")
    assert_refused(code, capsys.readouterr().err, phrase, caplog, recwarn)
    assert tree(layout) == before, "a refused command wrote into its folders"
    assert tree(cache_dir) == cached, "a refused command wrote into the dataset cache"


def test_the_third_sweep_holds_at_least_50_distinct_inputs():
    from test_bad_inputs import CASES as FIRST

    ids = [c[0] for c in CASES]
    assert len(set(ids)) == len(ids) >= 50
    assert not {tuple(c[1]) for c in CASES} & {tuple(c[1]) for c in FIRST}


# ---- options that do nothing where they are given: one note each, the command goes on --------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, cache_dir) -> Path:
    """The best-validation checkpoint of one tiny trained run."""
    out = tmp_path_factory.mktemp("ckpt") / "exp"
    assert bench("run", *TINY, "--out", out) == 0
    [path] = (out / "checkpoints").glob("*.pt")
    return path


NOTES = [
    ("data-root-embedded", ["data", "build", "mnist-res", "--data-root", "{tmp}/somewhere"],
     "--data-root {tmp}/somewhere is not read with --source embedded"),
    ("run-data-root-embedded", ["run", *TINY, "--out", "{tmp}/e", "--data-root", "{tmp}/x"],
     "--data-root {tmp}/x is not read with --source embedded"),
    ("run-rerun-no-retry", ["run", *TINY, "--out", "{tmp}/e", "--rerun", "--no-retry-failed"],
     "--no-retry-failed does nothing with --rerun"),
    ("run-no-deterministic-cpu", ["run", *TINY, "--out", "{tmp}/e", "--no-deterministic",
                                  "--device", "cpu"], "--no-deterministic only changes GPU"),
    ("perf-canvas-native", [*PF, "--canvas", "40", "--out", "{tmp}/p.json"],
     "--canvas 40 is not used under --input native"),
    ("perf-rounds-alone", [*PF, "--rounds", "3", "--out", "{tmp}/p.json"],
     "--rounds 3 is only read with --allocator"),
    ("perf-rounds-one", [*PF, "--rounds=1", "--out", "{tmp}/p.json"],
     "--rounds 1 is only read with --allocator"),
    ("eq-data-root-embedded", [*EQ, "--init-seeds", "0", "--data-root", "{tmp}/x"],
     "--data-root {tmp}/x is not read"),
    ("eq-init-seeds-checkpoint", ["equivariance", "--checkpoint", "{ckpt}", "--images", "4",
                                  "--sizes", "8", "--init-seeds", "0-2"],
     "--init-seeds is for fresh models"),
    ("report-perf-missing", ["report", "{tmp}/e", "--out", "{tmp}/r", "--perf",
                             "{tmp}/none.json"], "--perf {tmp}/none.json does not exist"),
]


@pytest.mark.parametrize("argv, phrase", [c[1:] for c in NOTES], ids=[c[0] for c in NOTES])
def test_an_option_that_does_nothing_gets_one_note_and_the_command_goes_on(
        argv, phrase, tmp_path, fake_runs, checkpoint, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "report":
        assert bench("run", *TINY, "--out", tmp_path / "e") == 0
        capsys.readouterr()
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{ckpt}", str(checkpoint))
            for a in argv]
    assert bench(*argv, "--quiet") == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("bench: note:")]
    assert len(notes) == 1, notes
    assert phrase.replace("{tmp}", str(tmp_path)) in notes[0]


def test_options_that_are_used_get_no_note(tmp_path, fake_runs, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert bench(*PF, "--canvas", "40", "--input", "pad", "--out", tmp_path / "p.json") == 0
    assert bench("run", *TINY, "--out", tmp_path / "e", "--rerun") == 0
    assert "bench: note:" not in capsys.readouterr().err


# ---- a sweep's datasets: sources checked once up front, each dataset built after the lock ----

def test_a_large_sweep_checks_its_source_once_and_builds_no_dataset_up_front(
        tmp_path, fake_runs, monkeypatch):
    from scaleqbench.datasets import cache, sources

    checked, built = [], []
    real_check = sources.check_source
    monkeypatch.setattr(sources, "check_source", lambda *a: checked.append(a) or real_check(*a))
    monkeypatch.setattr(cache, "build", lambda *a, **k: built.append(a))
    monkeypatch.setenv("SCALEQBENCH_CACHE", str(tmp_path / "fresh-cache"))
    assert bench("run", *TINY, "--seeds", "0-49", "--out", tmp_path / "exp") == 0
    assert len(checked) == 1  # one dataset, one source: not one check per seed
    assert built == [] and not (tmp_path / "fresh-cache").exists()  # the fake runs built none
    assert len(fake_runs["calls"]) == 50


def test_each_run_builds_its_dataset_when_it_is_computed_after_the_lock(tmp_path, monkeypatch):
    from scaleqbench.datasets import cache

    out, fresh, seen = tmp_path / "exp", tmp_path / "fresh-cache", []
    real_build = cache.build

    def build(name, source="embedded", seed=0, data_root=None):
        seen.append((seed, (out / ".bench.lock").exists(), len(list((out / "runs")
                                                                     .glob("*.json")))))
        return real_build(name, source=source, seed=seed, data_root=data_root)

    monkeypatch.setattr(cache, "build", build)
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out, "--cache-dir", fresh) == 0
    # seed 1's dataset is built after seed 0's run wrote its record, all under the lock
    assert seen == [(0, True, 0), (1, True, 1)]
    assert len(list(fresh.glob("*.pt"))) == 2
    assert not (out / ".bench.lock").exists()  # released and removed


def test_an_empty_data_root_stays_empty_after_a_refused_download(tmp_path, capsys):
    root = tmp_path / "emptyroot"
    root.mkdir()
    assert bench("data", "build", "mnist-res", "--source", "torchvision", "--data-root", root,
                 "--cache-dir", tmp_path / "cache") == 2
    assert "MNIST is not under" in capsys.readouterr().err
    assert list(root.iterdir()) == [] and not (tmp_path / "cache").exists()
    assert not (tmp_path / "missing").exists()


def test_a_download_that_succeeds_moves_its_files_into_the_data_root(tmp_path, monkeypatch):
    """The download is staged outside the data root; what it fetched is moved in."""
    import types

    from scaleqbench.datasets import sources

    class FakeMNIST:
        def __init__(self, root, train=True, download=False):
            raw = Path(root) / "MNIST" / "raw"
            raw.mkdir(parents=True)
            for name in sources.MNIST_FILES:
                (raw / name).write_bytes(b"idx")

    monkeypatch.setitem(__import__("sys").modules, "torchvision.datasets",
                        types.SimpleNamespace(MNIST=FakeMNIST))
    sources.check_source("mnist-torchvision", tmp_path / "root")
    raw = tmp_path / "root" / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(sources.MNIST_FILES)
    assert json.dumps(os.listdir(tmp_path)) == '["root"]'
