"""The robustness sweep, bad inputs: each gets one line and a non-zero exit, and nothing
is written.

Every case runs ``bench`` in this process (``scaleqbench.bench.cli.main.main``) with the
working directory in a fresh folder, and checks what a user sees: a non-zero exit,
exactly one line on stderr starting ``bench: error:`` (no traceback, no argparse
usage block), no warning logged, and no file created or changed anywhere under that
folder (the experiment folders the cases point at live there too). No case trains:
each is refused before a run starts. ``tests/robustness_totals.py`` counts the
outcomes of this module and of tests/test_faults.py.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from faults_support import assert_refused, bench, tree

R = ["run", "--out", "{tmp}/exp-new", "--limit-train", "40", "--limit-eval", "20",
     "--epochs", "1", "--no-report"]
SL = [*R, "--launcher", "slurm"]
EQ = ["equivariance", "--images", "4", "--sizes", "8"]
PF = ["perf", "--methods", "cnn", "--sizes", "8", "--batch", "2", "--repeats", "1",
      "--warmup", "0", "--out", "{tmp}/perf.json"]

# (id, argv, a phrase the one line must hold); "{tmp}" is the case's working folder, which
# holds exp (an experiment with one record and sweep.json), empty/, corrupt/ (one damaged
# record), nosweep/ (a record, no sweep.json), badsweep/ (sweep.json not JSON), a regular
# file, text and JSON files, and a bad TOML file
CASES: list[tuple[str, list[str], str]] = [
    # -- the parser: one line, a "did you mean" for a misspelt choice
    ("no-command", [], "arguments are required: command"),
    ("command-typo", ["lst"], "did you mean 'list'"),
    ("list-missing-what", ["list"], "arguments are required: what"),
    ("list-method", ["list", "method"], "did you mean 'methods'"),
    ("list-dataset", ["list", "dataset"], "did you mean 'datasets'"),
    ("list-extra", ["list", "presets", "extra"], "unrecognized arguments"),
    ("top-flag", ["--bogus"], "arguments are required"),
    ("run-flag", ["run", "--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    ("preset-typo", [*R, "--preset", "quik"], "did you mean 'quick'"),
    ("preset-case", [*R, "--preset", "Paper"], "did you mean 'paper'"),
    ("epochs-text", [*R, "--epochs", "x"], "invalid int value: 'x'"),
    ("epochs-float", [*R, "--epochs", "1.5"], "invalid int value"),
    ("input-choice", [*R, "--input", "crop"], "invalid choice: 'crop'"),
    ("launcher-typo", [*R, "--launcher", "slurn"], "did you mean 'slurm'"),
    ("limit-text", [*R, "--limit-train", "abc"], "invalid int value"),
    ("cpus-text", [*SL, "--cpus-per-job", "two"], "invalid int value"),
    ("data-missing", ["data"], "arguments are required: data_command"),
    ("data-typo", ["data", "biuld", "mnist-res"], "did you mean 'build'"),
    ("data-no-dataset", ["data", "build"], "arguments are required: dataset"),
    ("data-seed-text", ["data", "build", "mnist-res", "--seed", "x"], "invalid int value"),
    ("eq-images-text", [*EQ, "--images", "many"], "invalid int value"),
    ("perf-batch-text", [*PF, "--batch", "x"], "invalid int value"),
    ("perf-input", [*PF, "--input", "crop"], "invalid choice"),
    ("status-missing", ["status"], "arguments are required: experiment"),
    ("leaderboard-missing", ["leaderboard"], "arguments are required: folders"),
    ("report-missing", ["report"], "arguments are required: folders"),
    ("collect-missing", ["collect"], "arguments are required: experiment"),
    # -- bench run: methods and their options
    ("method-typo", [*R, "--methods", "cnnn"], "did you mean 'cnn'"),
    ("method-empty", [*R, "--methods", ""], "no methods"),
    ("method-pattern", [*R, "--methods", "zz*"], "matches no method"),
    ("timm-typo", [*R, "--methods", "timm:resnt18"], "did you mean 'timm:resnet18'"),
    ("timm-empty", [*R, "--methods", "timm:"], "timm has no model"),
    ("option-unknown", [*R, "--methods", "cnn[foo=1]"], "has no option 'foo'"),
    ("option-type", [*R, "--methods", "cnn[channels=abc]"], "must be a tuple"),
    ("option-typo", [*R, "--methods", "cnn[chanels=(8,16,24)]"], "did you mean 'channels'"),
    ("option-float-for-int", [*R, "--methods", "cnn[hidden=1.5]"], "must be an integer"),
    ("option-text-for-float", [*R, "--methods", "cnn[dropout=x]"], "must be a number"),
    ("option-unbalanced", [*R, "--methods", "cnn[channels=(8,16]"], "unbalanced"),
    ("option-no-key", [*R, "--methods", "cnn[=1]"], "is not key=value"),
    ("option-twice", [*R, "--methods", "cnn[hidden=8,hidden=9]"], "given twice"),
    ("option-no-bracket", [*R, "--methods", "cnn[hidden=64"], "unbalanced"),
    ("option-stray-bracket", [*R, "--methods", "cnn]"], "unbalanced"),
    ("option-trailing-text", [*R, "--methods", "cnn[hidden=8]x"], "cannot parse method"),
    ("option-dict", [*R, "--methods", "cnn[channels={1:2}]"], "write a number"),
    ("option-bad-name", [*R, "--methods", "cnn[1x=2]"], "is not a name"),
    ("option-unbuildable", [*R, "--methods", "cnn[channels=(0,0,0)]"], "cannot be built"),
    ("option-negative-kernel", [*R, "--methods", "cnn[kernel_size=-1]"], "cannot be built"),
    ("option-sesn", [*R, "--methods", "sesn[foo=1]"], "has no option 'foo'"),
    ("option-bool", [*R, "--methods", "cnn[hidden=True]"], "must be an integer"),
    # -- bench run: the rest of the sweep's values
    ("dataset-typo", [*R, "--dataset", "mnist-resx"], "did you mean 'mnist-res'"),
    ("dataset-empty", [*R, "--dataset", ""], "unknown dataset"),
    ("seeds-text", [*R, "--seeds", "0,x"], "bad seed"),
    ("seeds-reversed", [*R, "--seeds", "3-1"], "end is before the start"),
    ("seeds-negative", [*R, "--seeds", "-1"], "out of range"),
    ("seeds-empty", [*R, "--seeds", ""], "no seed"),
    ("seeds-huge", [*R, "--seeds", "99999999999"], "out of range"),
    ("epochs-zero", [*R, "--epochs", "0"], "--epochs must be >= 1"),
    ("epochs-negative", [*R, "--epochs", "-3"], "--epochs must be >= 1"),
    ("limit-train-one", [*R, "--limit-train", "1"], "--limit-train must be >= 2"),
    ("limit-eval-zero", [*R, "--limit-eval", "0"], "--limit-eval must be >= 2"),
    ("source-no-root", [*R, "--source", "torchvision"], "--data-root"),
    ("source-missing-root", [*R, "--source", "torchvision", "--data-root", "/nonexistent/d"],
     "MNIST"),
    ("source-unknown", [*R, "--source", "floppy"], "floppy"),
    ("stl10-no-data", [*R, "--dataset", "stl10"], "stl10"),
    ("device-unknown", [*R, "--device", "foo"], "unknown --device 'foo'"),
    ("device-gpu", [*R, "--device", "gpu"], "did you mean 'cuda'"),
    ("device-missing-gpu", [*R, "--device", "cuda:99"], "--device cuda:99"),
    ("device-meta", [*R, "--device", "meta"], "unknown --device 'meta'"),
    ("device-bad-index", [*R, "--device", "cpu:x"], "unknown --device"),
    ("local-partition", [*R, "--partition", "gpu"], "only apply to --launcher slurm"),
    ("local-detach", [*R, "--detach"], "only apply to --launcher slurm"),
    ("out-under-file", ["run", "--out", "{tmp}/afile/exp", "--no-report"],
     "cannot write to --out"),
    ("out-is-file", ["run", "--out", "{tmp}/afile", "--no-report"], "is a file, not a folder"),
    ("out-unwritable", ["run", "--out", "/sys/scaleqbench-exp", "--no-report"],
     "cannot write to --out"),
    # -- bench run --launcher slurm: refused before anything is submitted
    ("slurm-cpus-zero", [*SL, "--cpus-per-job", "0"], "must be >= 1"),
    ("slurm-array-zero", [*SL, "--array-parallelism", "0"], "must be >= 1"),
    ("slurm-mem", [*SL, "--mem", "-5"], "must be a size such as 32G"),
    ("slurm-time-zero", [*SL, "--time", "0"], "is zero"),
    ("slurm-time-text", [*SL, "--time", "abc"], "bad --time"),
    ("slurm-extra", [*SL, "--sbatch-extra", "novalue"], "is not KEY=VALUE"),
    ("slurm-config-missing", [*SL, "--launcher-config", "/nonexistent.toml"],
     "does not exist"),
    ("slurm-config-bad", [*SL, "--launcher-config", "{tmp}/bad.toml"],
     "cannot read launcher config"),
    ("slurm-signal-margin", [*SL, "--time", "2", "--signal-delay-s", "100"],
     "leaves 20 s before the checkpoint signal"),
    ("slurm-gpus-negative", [*SL, "--gpus-per-job", "-1"], "must be >= 0"),
    # -- bench data build
    ("data-unknown", ["data", "build", "mnist-resx"], "did you mean 'mnist-res'"),
    ("data-seed-negative", ["data", "build", "mnist-res", "--seed", "-1"],
     "--seed must be between 0 and"),
    ("data-seed-huge", ["data", "build", "mnist-res", "--seed", "4294967296"],
     "--seed must be between 0 and"),
    ("data-source", ["data", "build", "mnist-res", "--source", "floppy"], "floppy"),
    ("data-stl10", ["data", "build", "stl10"], "stl10"),
    ("data-root-missing", ["data", "build", "mnist-res", "--source", "torchvision",
                           "--data-root", "/nonexistent/d"], "MNIST"),
    # -- bench equivariance
    ("eq-seed-negative", [*EQ, "--seed", "-1"], "--seed must be between 0 and"),
    ("eq-images-zero", [*EQ, "--images", "0"], "--images must be >= 1"),
    ("eq-init-seeds-text", [*EQ, "--init-seeds", "0,x"], "bad init seed"),
    ("eq-init-seeds-negative", [*EQ, "--init-seeds", "-1"], "out of range"),
    ("eq-sizes-range", [*EQ, "--methods", "cnn", "--sizes", "4,99"], "out of range"),
    ("eq-method-typo", [*EQ, "--methods", "cnnn"], "did you mean 'cnn'"),
    ("eq-option", [*EQ, "--methods", "cnn[foo=1]"], "has no option 'foo'"),
    ("eq-device", [*EQ, "--device", "foo"], "unknown --device"),
    ("eq-ckpt-text", [*EQ, "--checkpoint", "{tmp}/notes.txt"], "not a scaleqbench checkpoint"),
    ("eq-ckpt-json", [*EQ, "--checkpoint", "{tmp}/record.json"],
     "not a scaleqbench checkpoint"),
    ("eq-ckpt-missing", [*EQ, "--checkpoint", "{tmp}/none.pt"], "no checkpoint file"),
    ("eq-config", [*EQ, "--methods", "cnn", "--config", "nope"], "has no config 'nope'"),
    ("eq-dataset", [*EQ, "--dataset", "nope"], "unknown dataset"),
    # -- bench perf
    ("perf-channels-zero", [*PF, "--channels", "0"], "--channels must be >= 1"),
    ("perf-batch-zero", [*PF, "--batch", "0"], "--batch must be >= 2"),
    ("perf-batch-one", [*PF, "--batch", "1"], "--batch must be >= 2"),
    ("perf-repeats-zero", [*PF, "--repeats", "0"], "--repeats must be >= 1"),
    ("perf-warmup-negative", [*PF, "--warmup", "-1"], "--warmup >= 0"),
    ("perf-sizes-text", [*PF, "--sizes", "8,a"], "bad size"),
    ("perf-sizes-zero", [*PF, "--sizes", "0"], "out of range"),
    ("perf-canvas", [*PF, "--canvas", "4"], "--canvas 4 is smaller"),
    ("perf-method", [*PF, "--methods", "cnnn"], "did you mean 'cnn'"),
    ("perf-option", [*PF, "--methods", "cnn[foo=1]"], "has no option 'foo'"),
    ("perf-device", [*PF, "--device", "foo"], "unknown --device"),
    ("perf-allocator", [*PF, "--allocator", "bogus"], "--allocator takes"),
    ("perf-rounds", [*PF, "--allocator", "system", "--rounds", "0"], "--rounds must be >= 1"),
    ("perf-out-dir", [*PF, "--out", "{tmp}/empty"], "is a folder"),
    ("perf-memory", [*PF, "--sizes", "3000", "--batch", "64"], "for one training step"),
    # -- reading experiments
    ("leaderboard-missing-folder", ["leaderboard", "{tmp}/nothing"], "no run records"),
    ("leaderboard-out-file", ["leaderboard", "{tmp}/exp", "--out", "{tmp}/afile"],
     "is a file, not a folder"),
    ("leaderboard-out-unwritable", ["leaderboard", "{tmp}/exp", "--out", "/sys/sb-board"],
     "cannot write to --out"),
    ("leaderboard-empty", ["leaderboard", "{tmp}/empty"], "no run records"),
    ("leaderboard-strict", ["leaderboard", "{tmp}/corrupt", "--strict"], "--strict stops"),
    ("report-missing-folder", ["report", "{tmp}/nothing", "--out", "{tmp}/r"],
     "no run records"),
    ("report-out-readonly", ["report", "{tmp}/exp", "--out", "/sys"], "cannot write to --out"),
    ("report-out-file", ["report", "{tmp}/exp", "--out", "{tmp}/afile"],
     "is a file, not a folder"),
    ("report-strict", ["report", "{tmp}/corrupt", "--strict", "--out", "{tmp}/r"],
     "--strict stops"),
    ("status-missing-folder", ["status", "{tmp}/nothing"], "no sweep.json"),
    ("status-no-sweep", ["status", "{tmp}/nosweep"], "no sweep.json"),
    ("status-bad-sweep", ["status", "{tmp}/badsweep"], "cannot read"),
    ("collect-missing-folder", ["collect", "{tmp}/nothing"], "no sweep.json"),
]



@pytest.fixture(scope="module")
def layout(tmp_path_factory, cache_dir) -> Path:
    """The folders and files the cases point at (made once; each case checks they stay)."""
    import torch

    from scaleqbench.bench.store.record import RunRecord
    from scaleqbench.bench.store.run_store import RunStore
    from scaleqbench.bench.spec import RunSpec
    from scaleqbench.bench.launch.sweep import save_sweep

    root = tmp_path_factory.mktemp("bad-inputs")
    spec = RunSpec("cnn", epochs=1, limit_train=40, limit_eval=20)
    rec = RunRecord.for_spec(spec, status="ok", test_acc=0.5, params=1)
    for name in ("exp", "corrupt", "nosweep"):
        RunStore(root / name).write(rec)
    save_sweep(root / "exp", [spec], launcher="local")
    other = RunRecord.for_spec(RunSpec("cnn", seed=1), status="ok", test_acc=0.4, params=1)
    path = RunStore(root / "corrupt").write(other)
    path.write_text(path.read_text()[:50])
    (root / "badsweep").mkdir()
    (root / "badsweep" / "sweep.json").write_text("{not json")
    (root / "empty").mkdir()
    (root / "afile").write_text("a regular file\n")
    (root / "notes.txt").write_text("not a checkpoint\n")
    (root / "record.json").write_text(json.dumps({"spec": {}}))
    (root / "bad.toml").write_text("partition = [unclosed\n")
    torch.load  # noqa: B018 - imported here so that no case pays for it
    return root


@pytest.mark.timeout(60)
@pytest.mark.parametrize("argv, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(argv, phrase, layout, cache_dir, capsys, caplog, monkeypatch, recwarn):
    monkeypatch.chdir(layout)  # a default output (results/...) would land here and be seen
    argv = [a.replace("{tmp}", str(layout)) for a in argv]
    before = tree(layout)
    caplog.set_level(logging.WARNING)
    code = bench(*argv)  # argparse's own exit (after its one line) is its exit code
    strict = argv[:1] and argv[0] in ("leaderboard", "report") and "--strict" in argv
    assert_refused(code, capsys.readouterr().err, phrase, caplog, recwarn,
                   beside="bench: warning:" if strict else None)
    assert tree(layout) == before, "a rejected command wrote into its folders"
    assert not Path("/sys/scaleqbench-exp").exists()


def test_the_sweep_holds_at_least_100_distinct_inputs():
    ids = [c[0] for c in CASES]
    argvs = [tuple(c[1]) for c in CASES]
    assert len(set(ids)) == len(ids) and len(set(argvs)) == len(argvs) >= 100
    assert os.sep not in "".join(ids)
