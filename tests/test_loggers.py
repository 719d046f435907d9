"""A run's per-epoch logs (bench/run/loggers.py): the CSV beside its record, TensorBoard events
and an offline Weights & Biases run that hold the same values, and loggers that fail without
failing the run.

* the CSV is the record's history, row for row, and its per-size validation accuracies
  average (weighted by the images of each size) to the epoch's validation accuracy;
* a resumed or restarted run leaves exactly its own epochs in the CSV;
* TensorBoard's own reader finds every value of the history at its epoch;
* ``WANDB_MODE=offline`` writes a run directory whose log holds the values, with no network;
* a logger that cannot start, or raises at any call, is one warning: the run ends ``ok`` with
  its CSV and its history whole;
* ``--log`` names are checked before anything runs, and do not change a run's identity.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import math
from pathlib import Path

import pytest

from scaleqbench.bench.cli.main import main
from scaleqbench.bench.run import loggers
from scaleqbench.bench.run.loggers import (
    EPOCH_COLUMNS,
    CsvLogger,
    epoch_csv_path,
    parse_logger_names,
    tensorboard_dir,
)
from scaleqbench.bench.run.train import prepare_data, run_one
from scaleqbench.bench.spec import RunSpec

TINY = {"epochs": 2, "limit_train": 40, "limit_eval": 40}


def _csv_rows(path: Path) -> list[dict[str, float]]:
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory, cache_dir):
    """A finished two-epoch run that also logs to TensorBoard (when the package is there)."""
    out = tmp_path_factory.mktemp("logs") / "exp"
    names = ("tensorboard",) if importlib.util.find_spec("tensorboard") else ()
    spec = RunSpec("cnn", log=names, **TINY)
    record = run_one(spec, out)
    assert record.status == "ok", record.error
    return spec, record, out


# --- the CSV -----------------------------------------------------------------------------------

def test_the_epoch_csv_is_the_history_beside_the_record(tensorboard_run):
    spec, record, out = tensorboard_run
    path = epoch_csv_path(out, spec.run_id)
    assert path.parent == out / "runs" and (out / "runs" / f"{spec.run_id}.json").is_file()
    with path.open(newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header[:len(EPOCH_COLUMNS)]) == EPOCH_COLUMNS
    rows = _csv_rows(path)
    assert [r["epoch"] for r in rows] == [1, 2] and len(record.history) == 2
    for row, epoch in zip(rows, record.history):
        assert set(row) == set(epoch)
        for key, value in epoch.items():
            assert row[key] == pytest.approx(value, rel=1e-15)  # repr round-trips a float
    assert rows[1]["time_s"] > rows[0]["time_s"] > 0


def test_per_size_validation_accuracy_averages_to_the_epochs_accuracy(tensorboard_run):
    spec, record, _ = tensorboard_run
    ds, _ = prepare_data(spec)
    counts = {str(s): n for s, n in ds.val.size_histogram().items()}
    assert len(counts) > 1  # a multi-resolution validation split: one column per size
    for epoch in record.history:
        per_size = {k.removeprefix("val_acc@"): v for k, v in epoch.items()
                    if k.startswith("val_acc@")}
        assert set(per_size) == set(counts)
        weighted = sum(per_size[s] * counts[s] for s in counts) / sum(counts.values())
        assert weighted == pytest.approx(epoch["val_acc"], abs=1e-12)
        assert all(0.0 <= v <= 1.0 for v in per_size.values())


def test_a_resumed_run_leaves_exactly_its_own_epochs(tmp_path):
    path = tmp_path / "runs" / "r.epochs.csv"
    first = [{"epoch": 1, "train_loss": 2.0, "train_acc": 0.1, "val_acc": 0.2, "lr": 0.01,
              "time_s": 1.5, "val_acc@8": 0.0}]
    log = CsvLogger(path)
    log.start([])
    assert path.read_text().splitlines() == [",".join(EPOCH_COLUMNS)]  # an empty log
    log.log_epoch(first[0])
    log.log_epoch({**first[0], "epoch": 2})  # the epoch an interruption loses
    resumed = CsvLogger(path)
    resumed.start(first)  # the state it resumes from knows one epoch
    resumed.log_epoch({**first[0], "epoch": 2, "val_acc": 0.3})
    rows = _csv_rows(path)
    assert [(r["epoch"], r["val_acc"]) for r in rows] == [(1, 0.2), (2, 0.3)]
    assert list(rows[0])[-1] == "val_acc@8"
    assert not list(tmp_path.glob("runs/.*.tmp"))  # written atomically


# --- TensorBoard and W&B -----------------------------------------------------------------------

def test_tensorboard_events_hold_every_epoch_value(tensorboard_run):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra "
                        "(pip install 'scaleqbench[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec, record, out = tensorboard_run
    events = EventAccumulator(str(tensorboard_dir(out, spec.run_id)))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/acc", "train/lr", "train/time_s"} <= tags
    assert any(t.startswith("val/acc@") for t in tags)
    size_key = next(k for k in record.history[0] if k.startswith("val_acc@"))
    for tag, key in [("train/loss", "train_loss"), ("val/acc", "val_acc"), ("train/lr", "lr"),
                     (size_key.replace("val_acc", "val/acc"), size_key)]:
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2]
        for s, epoch in zip(scalars, record.history):  # stored as float32
            assert s.value == pytest.approx(epoch[key], rel=1e-6, abs=1e-7)


def test_wandb_offline_writes_a_run_directory(tmp_path, cache_dir, monkeypatch):
    pytest.importorskip("wandb", reason="needs the wandb extra (pip install 'scaleqbench[wandb]')")
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network, no account
    monkeypatch.setenv("WANDB_PROJECT", "scaleqbench-test")
    out = tmp_path / "exp"
    spec = RunSpec("cnn", log=("wandb",), epochs=1, limit_train=40, limit_eval=40)
    record = run_one(spec, out)
    assert record.status == "ok", record.error
    [run_dir] = (out / "wandb").glob("offline-run-*")
    [log_file] = run_dir.glob("run-*.wandb")
    data = log_file.read_bytes()
    # the transaction log keeps keys, names and values as text inside its protobuf records
    size_key = next(k for k in record.history[0] if k.startswith("val_acc@"))
    for text in ("train/loss", "val/acc", size_key.replace("val_acc", "val/acc"), spec.run_id,
                 "scaleqbench-test", repr(record.history[0]["val_acc"])):
        assert text.encode() in data, text


# --- failing loggers ---------------------------------------------------------------------------

class _Failing:
    """A logger that raises at one of its calls."""

    def __init__(self, at: str):
        self.at, self.calls = at, []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.at:
            raise RuntimeError(f"logger broke in {name}")

    def start(self, history):
        self._call("start")

    def log_epoch(self, row):
        self._call("log_epoch")

    def close(self):
        self._call("close")


@pytest.mark.parametrize("at", ["init", "start", "log_epoch", "close"])
def test_a_failing_logger_is_one_warning_and_the_run_goes_on(tmp_path, cache_dir, monkeypatch,
                                                             caplog, at):
    made: list[_Failing] = []

    def factory(out, run_id, name, config):
        if at == "init":
            raise ImportError("No module named 'tensorboard'")
        made.append(_Failing(at))
        return made[-1]

    monkeypatch.setitem(loggers.LOGGERS, "tensorboard", factory)
    spec = RunSpec("cnn", log=("tensorboard",), **TINY)
    with caplog.at_level(logging.WARNING, logger="scaleqbench.bench.run.loggers"):
        record = run_one(spec, tmp_path)
    assert record.status == "ok", record.error
    warnings = [r.getMessage() for r in caplog.records if r.name.endswith("loggers")]
    assert len(warnings) == 1 and "the tensorboard log stopped, the run goes on" in warnings[0]
    if at == "init":
        assert "pip install 'scaleqbench[tensorboard]'" in warnings[0]
    else:
        assert f"logger broke in {at}" in warnings[0]
        # dropped after its failure: never called again
        assert made[0].calls[-1] == at and made[0].calls.count(at) == 1
    rows = _csv_rows(epoch_csv_path(tmp_path, spec.run_id))
    assert [r["epoch"] for r in rows] == [1, 2] and len(record.history) == 2


# --- the command line --------------------------------------------------------------------------

def test_log_names_are_checked_before_anything_runs(monkeypatch):
    # each name once, in the order given, for the loggers whose packages are installed
    installed = [n for n in ("tensorboard", "wandb") if importlib.util.find_spec(n)]
    assert parse_logger_names(",".join([*installed, *installed])) == tuple(installed)
    with pytest.raises(ValueError, match=r"unknown logger 'tensorbord' \(did you mean "
                                         r"'tensorboard'\?\)"):
        parse_logger_names("tensorbord")
    monkeypatch.setitem(loggers.LOGGER_PACKAGES, "wandb", "wandb_not_installed_here")
    with pytest.raises(ValueError, match=r"pip install 'scaleqbench\[wandb_not_installed_here"):
        parse_logger_names("wandb")


def test_bench_run_log_streams_without_changing_the_run(tmp_path, cache_dir, capsys):
    pytest.importorskip("tensorboard", reason="needs the tensorboard extra")
    out = tmp_path / "exp"
    args = ["run", "--methods", "cnn", "--epochs", "1", "--limit-train", "40", "--limit-eval",
            "20", "--quiet", "--no-report", "--out", str(out)]
    with pytest.raises(SystemExit) as info:
        main([*args, "--log", "tensorbard"])
    assert info.value.code == 2 and not out.exists()  # refused: nothing written
    assert "did you mean 'tensorboard'" in capsys.readouterr().err
    assert main([*args, "--log", "tensorboard"]) == 0
    [record] = (out / "runs").glob("*.json")
    run_id = record.stem
    assert list(tensorboard_dir(out, run_id).glob("events.out.tfevents.*"))
    assert epoch_csv_path(out, run_id).is_file()
    capsys.readouterr()
    assert main(args) == 0  # without --log: the same run, already done
    assert "1 already done" in capsys.readouterr().out
    assert not math.isnan(_csv_rows(epoch_csv_path(out, run_id))[0]["val_acc"])
