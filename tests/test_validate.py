"""The checks behind the one-line errors, one by one: method options (the README's
syntax, unknown keys, wrong kinds), --device, the perf memory bound, output folders, the
full-disk error, SIGTERM and --quiet."""

from __future__ import annotations

import errno
import json
import pickle
import re
import signal
import warnings

import pytest
import torch

from scaleqbench.bench.store import atomic_io
from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.run import memory_bound
from scaleqbench.bench.errors import (
    BadArgumentError,
    DiskFullError,
    MemoryLimitError,
    OutputNotWritableError,
    UnknownNameError,
)
from scaleqbench.bench.cli.signals import Terminated, exit_status, sigterm_interrupts
from scaleqbench.bench.spec import RunSpec, expand
from scaleqbench.bench.spec_parsing import parse_method, parse_methods
from scaleqbench.bench.cli.method_options import check_method_options
from scaleqbench.bench.cli.validate import check_device, writable_file, writable_folder


# ---- the README's override syntax ---------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("cnn[channels=(8,16,24)]", ("cnn", {"channels": (8, 16, 24)})),
    ("cnn[channels=[8, 16, 24],hidden=64]", ("cnn", {"channels": (8, 16, 24), "hidden": 64})),
    ("fourier[impl=reference,width=2]", ("fourier", {"impl": "reference", "width": 2})),
    ("cnn[name='a,b']", ("cnn", {"name": "a,b"})),
    ("cnn[grid=((1,2),(3,4))]", ("cnn", {"grid": ((1, 2), (3, 4))})),
    ("cnn[]", ("cnn", {})),
])
def test_values_are_python_literals_after_a_top_level_split(text, expected):
    assert parse_method(text) == expected


def test_a_method_list_splits_outside_brackets_and_a_tuple_option_round_trips():
    chosen = parse_methods("cnn[channels=(8,16,24)],dss")
    assert chosen == [("cnn", {"channels": (8, 16, 24)}), ("dss", {})]
    [spec] = expand(chosen[:1], "mnist-res", [0])
    back = RunSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back == spec and back.run_id == spec.run_id and hash(back) == hash(spec)
    check_method_options(chosen, "quick")  # the model builds and runs with them


# ---- recipe overrides (--recipe) ------------------------------------------------------------------

def test_recipe_overrides_parse_and_are_checked_against_the_recipe():
    from scaleqbench.bench.cli.method_options import check_recipe
    from scaleqbench.bench.run.recipes import TrainRecipe
    from scaleqbench.bench.spec_parsing import parse_recipe

    assert parse_recipe("lr=0.01,batch_size=32,milestones=(3, 6)") == {
        "lr": 0.01, "batch_size": 32, "milestones": (3, 6)}
    every = {"optimizer": "sgd", "lr": 1, "weight_decay": 0, "momentum": 0.5, "nesterov": True,
             "schedule": "step", "milestones": 4, "step_size": 2, "gamma": 0.5, "epochs": 3,
             "batch_size": 16, "no_decay": ("bias",)}
    assert set(every) == {f for f in TrainRecipe.__dataclass_fields__}  # every field
    checked = check_recipe(every)
    assert checked["lr"] == 1.0 and isinstance(checked["lr"], float)  # as the recipe holds it
    assert checked["milestones"] == (4,) and checked["weight_decay"] == 0.0
    for text in ("lr", "lr=", "=1", "lr=1,lr=2", "2x=1", ""):
        with pytest.raises(BadArgumentError, match="recipe"):
            parse_recipe(text)


@pytest.mark.parametrize("overrides, error, phrase", [
    ({"lrr": 0.1}, UnknownNameError, "has no field 'lrr' (did you mean 'lr'?); its fields: "),
    ({"batchsize": 8}, UnknownNameError, "did you mean 'batch_size'"),
    ({"lr": "fast"}, BadArgumentError, "lr must be a number"),
    ({"batch_size": 3.5}, BadArgumentError, "batch_size must be an integer"),
    ({"nesterov": 1}, BadArgumentError, "nesterov must be True or False"),
    ({"milestones": (2, "x")}, BadArgumentError, "milestones must be a tuple of integers"),
    ({"optimizer": "adm"}, BadArgumentError, "one of adam, adamw, sgd (did you mean 'adam'?)"),
    ({"schedule": "cosine"}, BadArgumentError, "one of multistep, step, constant"),
    ({"lr": 0}, BadArgumentError, "lr must be > 0"),
    ({"batch_size": 1}, BadArgumentError, "batch_size must be >= 2"),
    ({"epochs": 0}, BadArgumentError, "epochs must be >= 1"),
])
def test_a_bad_recipe_override_is_one_line_naming_key_and_kind(overrides, error, phrase):
    from scaleqbench.bench.cli.method_options import check_recipe

    with pytest.raises(error, match=re.escape(phrase)) as info:
        check_recipe(overrides)
    assert len(str(info.value).splitlines()) == 1 and str(info.value).startswith("--recipe")


@pytest.mark.parametrize("argv, phrase", [
    (["--recipe", "lrr=1"], "did you mean 'lr'"),
    (["--recipe", "batch_size=big"], "batch_size must be an integer"),
    (["--recipe", "epochs=2", "--epochs", "3"], "give the number of epochs once"),
])
def test_bench_run_refuses_a_bad_recipe_before_anything_is_written(argv, phrase, tmp_path,
                                                                     capsys):
    out = tmp_path / "exp"
    assert cli.main(["run", "--methods", "cnn", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert phrase in err and len(err.strip().splitlines()) == 1 and not out.exists()


# ---- options against the method's configuration, the device -------------------------------------

@pytest.mark.parametrize("text, error, phrase", [
    ("cnn[foo=1]", UnknownNameError, "has no option 'foo'; its options: "),
    ("cnn[hiden=64]", UnknownNameError, "did you mean 'hidden'"),
    ("cnn[channels=abc]", BadArgumentError, "must be a tuple such as channels=(16, 32, 48)"),
    ("cnn[hidden=True]", BadArgumentError, "must be an integer"),
    ("cnn[dropout='x']", BadArgumentError, "must be a number"),
    ("cnn[channels=(0,0,0)]", BadArgumentError, "cannot be built"),
])
def test_options_are_checked_against_the_method(text, error, phrase):
    with pytest.raises(error, match=re.escape(phrase)):
        check_method_options(parse_methods(text), "quick")


def test_the_trial_build_leaves_the_global_rng_alone():
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    check_method_options(parse_methods("cnn[hidden=32]"), "quick")
    assert torch.equal(torch.rand(3), expected)


def test_a_device_is_checked_against_what_torch_sees(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BadArgumentError, match="torch sees no CUDA GPU"):
        check_device("cuda:0")
    assert check_device("cuda:0", here=False) == "cuda:0"  # a Slurm node's, not ours
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == "cuda:1"
    with pytest.raises(BadArgumentError, match=r"2 CUDA GPU\(s\) here, cuda:0..cuda:1"):
        check_device("cuda:2")
    with pytest.raises(BadArgumentError, match="did you mean 'cpu'"):
        check_device("cpux")
    assert check_device("auto") == "auto" and check_device("cpu") == "cpu"


# ---- the memory bound of bench perf -------------------------------------------------------------

def test_the_estimate_grows_with_pixels_and_batch():
    from scaleqbench import methods

    model = methods.create("cnn", config="quick")
    small = memory_bound.estimate_step_bytes(model, 1, 64, 2)
    params = 4 * sum(p.numel() * 4 for p in model.parameters())
    assert memory_bound.estimate_step_bytes(model, 1, 128, 2) - params == pytest.approx(
        4 * (small - params), rel=1e-6)
    assert memory_bound.estimate_step_bytes(model, 1, 64, 6) - params == pytest.approx(
        3 * (small - params), rel=1e-6)
    # at least the unfolded input of the widest 7x7 convolution at 1000 px
    assert memory_bound.estimate_step_bytes(model, 1, 1000, 1) > 16 * 49 * 500 ** 2 * 4


def test_perf_refuses_what_does_not_fit_before_measuring(monkeypatch, tmp_path, capsys):
    from scaleqbench.bench.run import perf

    monkeypatch.setattr(memory_bound, "available_bytes", lambda device: 64 * 2**20)
    monkeypatch.setattr(perf, "run_perf", lambda *a, **k: pytest.fail("it measured"))
    out = tmp_path / "perf.json"
    code = cli.main(["perf", "--methods", "cnn", "--sizes", "8,200", "--batch", "16",
                     "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and not out.exists()
    assert "cnn at size 200, batch 16 needs about" in err and "0.1 GB free on cpu" in err


def test_an_allocation_the_device_refuses_is_one_line():
    with pytest.raises(MemoryLimitError, match="refused an allocation"):
        with memory_bound.refused_allocation():
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                               "can't allocate memory: you tried to allocate 22000000000 bytes")
    with pytest.raises(RuntimeError, match="other"):  # anything else is not hidden
        with memory_bound.refused_allocation():
            raise RuntimeError("other")


# ---- disk full, output folders ------------------------------------------------------------------

def test_torch_save_on_a_full_disk_names_the_file_system_and_the_file(tmp_path, monkeypatch):
    import io

    class Full(io.FileIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_io, "open", lambda fd, mode="r": Full(fd, "wb"), raising=False)
    target = tmp_path / "ckpt.last.pt"
    with pytest.raises(DiskFullError) as info:
        atomic_io.atomic_torch_save({"w": torch.zeros(1000)}, target)
    assert str(info.value).startswith("no space left on /")
    assert f"while writing {target}" in str(info.value)
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no temporary file
    again = pickle.loads(pickle.dumps(info.value))  # a Slurm task's error travels pickled
    assert str(again) == str(info.value)


def test_output_folders_and_files(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputNotWritableError, match="is a file, not a folder"):
        writable_folder(tmp_path / "f")
    with pytest.raises(OutputNotWritableError, match="cannot write to --out"):
        writable_folder("/sys/scaleqbench-no")
    assert writable_folder(tmp_path / "a" / "b").is_dir()
    assert not [p for p in (tmp_path / "a" / "b").iterdir()]  # the probe is gone
    with pytest.raises(OutputNotWritableError, match="is a folder"):
        writable_file(tmp_path / "a")
    with pytest.raises(OutputNotWritableError, match="is a file, not a folder"):
        writable_file(tmp_path / "f" / "perf.json")


# ---- SIGTERM, --quiet ---------------------------------------------------------------------------

def test_sigterm_raises_an_interrupt_only_inside_and_the_handler_comes_back(
        default_dispositions):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as info:
        with sigterm_interrupts():
            signal.raise_signal(signal.SIGTERM)
    assert isinstance(info.value, KeyboardInterrupt) and exit_status(info.value) == 143
    assert exit_status(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) == before
    with pytest.raises(Terminated) as info:
        with sigterm_interrupts():
            signal.raise_signal(signal.SIGHUP)
    assert exit_status(info.value) == 129  # the terminal went away: as the shell reports it


def test_an_ignored_hangup_stays_ignored(default_dispositions):
    """Started under ``nohup`` (SIGHUP ignored), the hang-up is no interrupt; SIGTERM still is."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with sigterm_interrupts():
        signal.raise_signal(signal.SIGHUP)  # ignored: nothing happens
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        with pytest.raises(Terminated):
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN


def test_quiet_hides_torch_warnings(monkeypatch, capsys):
    from scaleqbench.bench.cli import cmd_list

    def warn(args):
        warnings.warn("Initializing zero-element tensors is a no-op", UserWarning)
        return 0

    monkeypatch.setattr(cmd_list, "cmd_list", warn)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            assert cli.main(["list", "presets", "--quiet"]) == 0
        assert not shown
        with warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            assert cli.main(["list", "presets"]) == 0
        assert [str(w.message) for w in shown] == ["Initializing zero-element tensors is a no-op"]


def test_a_large_resize_matrix_is_summed_in_slices_to_the_same_values(monkeypatch):
    """Case 12's 22 GB: bench perf's input at 1000 px needed a 2000 x 1000 x 1000 cosine table
    at once; above 2**25 elements it is now summed over slices of frequencies."""
    from scaleqbench.datasets import scaling

    whole = scaling._resize_matrix_cpu64(60, 40)
    scaling._resize_matrix_cpu64.cache_clear()
    monkeypatch.setattr(scaling, "_TABLE_ELEMENTS", 500)  # 60 x 40 x 39 is far more
    try:
        sliced = scaling._resize_matrix_cpu64(60, 40)
    finally:
        scaling._resize_matrix_cpu64.cache_clear()
    assert torch.allclose(sliced, whole, rtol=0, atol=1e-14)
    x = torch.randn(2, 60, 60, dtype=torch.float64)
    assert torch.allclose(sliced @ x @ sliced.T, scaling.fourier_resize_fft(x, 40), atol=1e-12)


def test_a_perf_command_with_a_batch_of_one_is_refused_in_one_line(capsys, tmp_path):
    out = tmp_path / "perf.json"
    code = cli.main(["perf", "--methods", "cnn", "--sizes", "1000", "--batch", "1",
                     "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "--batch must be >= 2" in capsys.readouterr().err
