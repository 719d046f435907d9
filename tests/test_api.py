"""The library API of ``scaleqbench.bench``: docs/api.md's examples run as written, and
``load_results`` / ``load_run`` read a real experiment folder (made here by ``bench run``)
and refuse what is not theirs with errors that say what is wrong.

* the package root loads the API lazily: importing it imports neither torch nor pandas;
* ``check_equivariance`` refuses each wrong argument with a ValueError that names it;
* every ``python`` block of docs/api.md, executed in order in one namespace with
  ``results_folder`` set, runs and computes what its prose says;
* ``load_results``: one row per record, per-size columns that agree with the record and
  with ``eq_err``, the history as a long table, damaged records warned about and left
  out, a run found twice counted once;
* ``load_run``: the same weights from a checkpoint, a record or a run id, the global
  random state untouched, and a :class:`CheckpointError` for every foreign input.

(``evaluate``: tests/test_api_evaluate.py.)
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import scaleqbench.bench as sb
from scaleqbench.bench.api import ResultsWarning, checkpoint_of, history_frame
from scaleqbench.bench.errors import CheckpointError, CorruptRecordError, NoRecordsError

# experiment: a fixture, found by pytest under this name
from api_support import _record_file, experiment, ROOT


API_DOC = ROOT / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


# --- the package root ---------------------------------------------------------------------------

def test_importing_the_package_loads_nothing_heavy():
    code = ("import sys, scaleqbench.bench as sb; "
            "heavy = [m for m in ('torch', 'pandas', 'numpy') if m in sys.modules]; "
            "assert not heavy, heavy; "
            "assert {'check_equivariance', 'evaluate', 'load_results', 'load_run', 'create', "
            "'list_methods', '__version__'} <= set(sb.__all__) <= set(dir(sb)); print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_the_root_exports_the_api_and_the_installed_version():
    from scaleqbench import methods
    from scaleqbench.bench.api.evaluation import evaluate
    from scaleqbench.bench.api.results import load_results
    from scaleqbench.bench.api.runs import load_run
    from scaleqbench.bench.run.equivariance import check_equivariance

    assert sb.check_equivariance is check_equivariance and sb.evaluate is evaluate
    assert sb.load_results is load_results and sb.load_run is load_run
    assert sb.create is methods.create and sb.list_methods is methods.list_methods
    assert sb.__version__ == importlib.metadata.version("scaleqbench")
    for name in sb.__all__:
        assert getattr(sb, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'load_everything'"):
        sb.load_everything  # noqa: B018


# --- check_equivariance's arguments ------------------------------------------------------------

class _Maps(torch.nn.Module):
    """One feature map (the image) and logits (its mean): enough to reach the checks."""

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"id": x}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((-2, -1))


@pytest.mark.parametrize("x, kwargs, message", [
    (torch.rand(2, 1, 28, 20), {}, "square images"),
    (torch.rand(1, 28, 28), {}, "(B, C, N, N)"),
    (torch.rand(0, 1, 8, 8), {}, "at least one image"),
    (torch.randint(0, 255, (2, 1, 8, 8)), {}, "floating point"),
    (torch.rand(2, 1, 8, 8), {"operator": "ideall"}, "'ideall'"),
    (torch.rand(2, 1, 8, 8), {"operator": ["ideal", "lie"]}, "one of ideal"),
    (torch.rand(2, 1, 8, 8), {"sizes": [4, 8, 11]}, "from 1 to 7"),
    (torch.rand(2, 1, 8, 8), {"sizes": [0]}, "got 0"),
    (torch.rand(2, 1, 8, 8), {"sizes": []}, "got none"),
    (torch.rand(2, 1, 8, 8), {"sizes": [4.5]}, "integers"),
    (torch.rand(2, 1, 8, 8), {"input": "padded"}, "'padded'"),
    (torch.rand(2, 1, 8, 8), {"chunk": 0}, "chunk"),
])
def test_check_equivariance_names_what_is_wrong(x, kwargs, message):
    with pytest.raises(ValueError) as info:
        sb.check_equivariance(_Maps(), x, **kwargs)
    assert message in str(info.value)
    if "sizes" in kwargs and kwargs["sizes"] == [4, 8, 11]:
        assert "8, 11" in str(info.value)  # the sizes out of range, named
    if kwargs.get("operator") == "ideall":
        assert all(op in str(info.value) for op in ("ideal", "scale-shift", "bicubic", "lie"))


def test_check_equivariance_needs_feature_maps():
    with pytest.raises(TypeError, match="features"):
        sb.check_equivariance(torch.nn.Identity(), torch.rand(1, 1, 8, 8))


# --- docs/api.md --------------------------------------------------------------------------------

def test_the_api_page_examples_run_as_written(experiment, capsys):
    blocks = python_blocks(API_DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    ns: dict = {"results_folder": str(experiment), "__name__": "api_md"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/api.md python block {i + 1}", "exec"), ns)
    out = capsys.readouterr().out
    # what the prose around the examples says they show
    assert ns["res"].summary < 1e-20 < 1e-3 < ns["plain"].summary
    assert "sizes must be integers from 1 to 27" in out and "got 28" in out
    assert set(ns["shift"].per_layer["block1"]) == {14, 20}  # sesn_vector's grid at 28 px
    assert len(ns["df"]) == 1 and ns["df"].status[0] == "ok"
    assert any(c.startswith("acc@") for c in ns["wide"].columns)
    assert list(ns["epochs"].epoch) == [1]
    assert not ns["model"].training and ns["record"].run_id == ns["run_id"]
    scores = ns["scores"]  # the plugin model, at three sizes
    assert scores["sizes"] == [8, 14, 28] and list(scores["per_size_acc"]) == [8, 14, 28]
    assert set(scores["equivariance"]) == {"ideal", "scale-shift"}
    assert scores["equivariance"]["ideal"].sizes == (8, 14)
    measured, record = ns["measured"], ns["record"]  # a run's model: its record's numbers
    assert measured["test_acc"] == record.test_acc
    assert measured["eq_err"] == pytest.approx(record.eq_err, rel=1e-9)
    assert "True" in out  # the checkpoint and the run id give the same model
    assert "no run 'cnn-s0-000000000000'" in out


# --- load_results -------------------------------------------------------------------------------

def test_results_have_one_row_per_run_and_per_size_columns_that_agree(experiment):
    df = sb.load_results(experiment, per_size=True, history=True)
    record = json.loads(_record_file(experiment).read_text())
    [row] = df.to_dict("records")
    assert row["run_id"] == record["run_id"] and row["test_acc"] == record["test_acc"]
    assert row["folder"] == str(experiment) and row["checkpoint"].endswith(".pt")
    assert row["record_path"] == str(_record_file(experiment))
    assert row["best_epoch"] == 1 and row["epochs_trained"] == 1
    for size, acc in record["per_size_acc"].items():
        assert row[f"acc@{size}"] == acc
    acc_columns = [c for c in df.columns if c.startswith("acc@")]
    assert acc_columns == sorted(acc_columns, key=lambda c: int(c.split("@")[1]))  # 8 < 10
    eq = [row[f"eq_err@{s}"] for s in range(8, 28)]  # mnist-res: every size below 28
    assert sum(eq) / len(eq) == pytest.approx(row["eq_err"], rel=1e-12)
    logits = [row[f"logit_inv_err@{s}"] for s in range(8, 28)]
    assert sum(logits) / len(logits) == pytest.approx(row["logit_inv_err"], rel=1e-12)
    assert row["history"] == record["history"]
    long = history_frame(df)
    assert list(long.columns[:4]) == ["run_id", "method", "dataset", "seed"]
    assert len(long) == 1 and long.val_acc[0] == record["history"][0]["val_acc"]
    plain = sb.load_results([experiment])
    assert "history" not in plain and not any("@" in c for c in plain.columns)
    with pytest.raises(ValueError, match="history=True"):
        history_frame(plain)


def test_damaged_records_are_named_and_left_out_and_copies_count_once(experiment, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(experiment / "runs", copy / "runs")
    (copy / "runs" / "torn.json").write_text('{"run_id": "x", ')
    with pytest.warns(ResultsWarning) as caught:
        df = sb.load_results([experiment, copy])
    messages = [str(w.message) for w in caught]
    assert any("torn.json" in m and "left out" in m for m in messages)
    assert any("counted once" in m for m in messages)
    assert len(df) == 1 and df.folder[0] == str(experiment)
    with pytest.raises(NoRecordsError, match="no run records"):
        sb.load_results(tmp_path / "nothing-here")
    (copy / "runs" / "torn.json").rename(copy / "runs" / "torn.txt")
    for path in (copy / "runs").glob("*.json"):
        path.write_text("not json")
    with pytest.warns(ResultsWarning), pytest.raises(NoRecordsError, match="no readable"):
        sb.load_results(copy)


# --- load_run -----------------------------------------------------------------------------------

def test_a_run_loads_from_its_checkpoint_its_record_or_its_id(experiment):
    record_file = _record_file(experiment)
    run_id = record_file.stem
    checkpoint = experiment / "checkpoints" / f"{run_id}.pt"
    rng = torch.get_rng_state()
    by_id, record = sb.load_run(run_id, experiment)
    assert torch.equal(torch.get_rng_state(), rng)  # building a model drew no random numbers
    by_ckpt, record2 = sb.load_run(checkpoint)
    by_record, record3 = sb.load_run(record_file, device="cpu")
    assert record.run_id == record2.run_id == record3.run_id == run_id
    assert checkpoint_of(record) == checkpoint
    weights = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    for model in (by_id, by_ckpt, by_record):
        assert not model.training
        state = model.state_dict()
        assert state.keys() == weights.keys()
        assert all(torch.equal(state[k], weights[k]) for k in weights)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(by_id(x), by_ckpt(x))


def test_a_bare_checkpoint_loads_without_its_record(experiment, tmp_path):
    ckpt = next((experiment / "checkpoints").glob("*.pt"))
    alone = tmp_path / "alone.pt"
    shutil.copy(ckpt, alone)
    model, record = sb.load_run(alone)
    assert record is None and not model.training


def _failed_copy(experiment: Path, folder: Path, status: str = "failed") -> Path:
    """A copy of the run's record in ``folder`` without its checkpoint."""
    data = json.loads(_record_file(experiment).read_text())
    data.update(status=status, checkpoint=None)
    if status == "failed":
        data["error"] = "Traceback (most recent call last):\nValueError: boom"
    path = folder / "runs" / _record_file(experiment).name
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("case, error, message", [
    ("missing file", CheckpointError, "no such file"),
    ("bare run id", CheckpointError, "pass its experiment folder"),
    ("unknown run id", CheckpointError, "runs there: cnn-s0-"),
    ("a folder", CheckpointError, "is a folder"),
    ("text as checkpoint", CheckpointError, "not a scaleqbench checkpoint"),
    ("foreign torch file", CheckpointError, "no spec, config and state_dict"),
    ("per-epoch state", CheckpointError, "per-epoch training state"),
    ("not a record", CorruptRecordError, "not a readable run record"),
    ("failed run", CheckpointError, "failed (ValueError: boom)"),
    ("checkpoint not kept", CheckpointError, "has no checkpoint file"),
    ("wrong channels", CheckpointError, "does not fit a cnn model"),
])
def test_load_run_refuses_what_is_not_a_run(experiment, tmp_path, case, error, message):
    ckpt = next((experiment / "checkpoints").glob("*.pt"))
    kwargs: dict = {}
    if case == "missing file":
        args = (tmp_path / "nothing.pt",)
    elif case == "bare run id":
        args = (ckpt.stem,)
    elif case == "unknown run id":
        args = ("cnn-s0-000000000000", experiment)
    elif case == "a folder":
        args = (experiment,)
    elif case == "text as checkpoint":
        (tmp_path / "notes.pt").write_text("hello")
        args = (tmp_path / "notes.pt",)
    elif case == "foreign torch file":
        torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
        args = (tmp_path / "other.pt",)
    elif case == "per-epoch state":
        shutil.copy(ckpt, tmp_path / f"{ckpt.stem}.last.pt")
        args = (tmp_path / f"{ckpt.stem}.last.pt",)
    elif case == "not a record":
        (tmp_path / "config.json").write_text('{"lr": 0.1}')
        args = (tmp_path / "config.json",)
    elif case in ("failed run", "checkpoint not kept"):
        status = "failed" if case == "failed run" else "ok"
        args = (_failed_copy(experiment, tmp_path / "exp", status),)
    else:
        args, kwargs = (ckpt,), {"in_channels": 3}
    with pytest.raises(error) as info:
        sb.load_run(*args, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
