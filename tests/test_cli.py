"""The bench CLI end to end: a smoke sweep, resume, and every user error as one clear line.
(The parser, its options and its help: tests/test_cli_parser.py.)
"""

from __future__ import annotations

import json
import re
import os
from pathlib import Path

import pytest

from scaleqbench.bench.store.run_store import RunStore

# out: a fixture, found by pytest under this name
from cli_support import out, run_cli


def load_records(out):
    records, problems = RunStore(out).scan()
    assert not problems
    return records


TINY = ["--limit-train", "120", "--limit-eval", "60", "--epochs", "1", "--quiet"]


NO_REPORT = ["--no-report"]


def test_smoke_sweep_writes_records_leaderboard_and_resumes(out, capsys, monkeypatch):
    assert run_cli("run", "--methods", "cnn", "--seeds", "0,1", "--out", str(out), *TINY) == 0
    text = capsys.readouterr().out
    assert "cnn" in text and "equiv. err" in text
    # the end-of-run report: tables, figures and the page, in <out>/report
    report = out / "report"
    assert f"open {report / 'index.html'}" in text
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "index.html"):
        assert (report / name).stat().st_size > 0, name
    assert list((report / "figures").glob("acc_vs_size-*.png"))
    records = load_records(out)
    assert len(records) == 2 and all(r.ok for r in records)
    rec = records[0]
    stored = json.loads(rec.path.read_text())
    for key in ("run_id", "spec", "epochs",
                "params", "test_acc", "val_acc", "per_size_acc", "scale_consistency",
                "equivariance_error", "eq_err", "train_time_s", "train_img_per_s",
                "infer_img_per_s", "peak_mem_mb", "device", "versions", "started_at",
                "finished_at", "history", "schema_version"):
        assert stored.get(key) is not None, key
    # what was run: the spec as it was given, its protocol nested
    spec = stored["spec"]
    assert (spec["method"], spec["seed"], spec["experiment"]) == ("cnn", rec.seed, out.name)
    assert {k: spec["protocol"][k] for k in ("dataset", "source", "preset")} == {
        "dataset": "mnist-res", "source": "embedded", "preset": "quick"}
    assert 0 <= rec.test_acc <= 1 and rec.eq_err > 0
    assert set(rec.equivariance_error) >= {"block1", "block2", "block3", "logits"}
    # bench run records scale-shift too; cnn declares no scale axis: the plain comparison
    assert rec.equivariance_error_ops["scale-shift"] == rec.equivariance_error
    assert rec.eq_err_scale_shift == rec.eq_err and rec.scale_shift_left_out == {}
    assert (out / "leaderboard.md").read_text().count("cnn") == 1
    assert "test_acc_mean" in (out / "leaderboard.csv").read_text()
    assert Path(rec.checkpoint).is_file()

    # resume: nothing is recomputed
    import scaleqbench.bench.launch.job as launchers

    def boom(*a, **k):
        raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(launchers, "run_one", boom)
    assert run_cli("run", "--methods", "cnn", "--seeds", "0,1", "--out", str(out), *TINY,
                   *NO_REPORT) == 0
    assert "2 already done" in capsys.readouterr().out


def test_leaderboard_and_equivariance_commands(out, capsys):
    assert run_cli("run", "--methods", "cnn", "--out", str(out), *TINY, *NO_REPORT) == 0
    capsys.readouterr()
    assert run_cli("leaderboard", str(out)) == 0
    assert "cnn" in capsys.readouterr().out
    assert not (out / "report").exists()  # --no-report
    assert run_cli("report", str(out), "--out", str(out / "r")) == 0
    assert (out / "r" / "index.html").is_file() and "figures) in" in capsys.readouterr().out
    ckpt = next((out / "checkpoints").glob("*.pt"))
    assert run_cli("equivariance", "--checkpoint", str(ckpt), "--images", "8",
                   "--sizes", "8,16") == 0
    assert "trained, seed 0" in capsys.readouterr().out
    assert run_cli("equivariance", "--methods", "cnn", "--images", "8", "--sizes", "8-10",
                   "--init-seeds", "3") == 0
    one = capsys.readouterr().out
    assert "block3" in one and "±" not in one
    assert run_cli("equivariance", "--methods", "cnn", "--images", "8", "--sizes", "8-10",
                   "--init-seeds", "3,4") == 0
    two = capsys.readouterr().out
    assert "mean ± std over 2 initialisations" in two
    # the mean over seeds 3 and 4 is not seed 3's value: the seeds really differ
    value = lambda text: float(re.search(r"\| cnn +\| +(?:2 +\| +)?([0-9.e+-]+)", text).group(1))
    assert value(one) != value(two)


@pytest.mark.parametrize("seeds", ["0", "0,1"])
def test_an_equivariance_table_marks_a_layer_a_model_lacks_and_shows_no_nan(seeds, capsys):
    """cnn has no ``proj`` map, disco has: the union makes the columns, and cnn's cell says it
    has no such layer instead of reading as a NaN error."""
    assert run_cli("equivariance", "--methods", "cnn,disco", "--config", "quick", "--images",
                   "4", "--sizes", "8,16", "--init-seeds", seeds) == 0
    text = capsys.readouterr().out
    header = next(line for line in text.splitlines() if line.startswith("| method"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    cells = {row.strip("|").split("|")[0].strip(): [c.strip() for c in row.strip("|").split("|")]
             for row in text.splitlines() if row.startswith(("| cnn", "| disco"))}
    assert cells["cnn"][cols.index("proj")] == "—"
    assert cells["disco"][cols.index("proj")] != "—"
    assert "nan" not in text
    for name, row in cells.items():  # every measured cell a finite non-negative number
        for col, cell in zip(cols, row):
            if col not in ("method", "input", "inits") and cell != "—":
                assert 0 <= float(cell.split(" ± ")[0]) < float("inf"), (name, col, cell)


def test_list_and_data_build(capsys):
    assert run_cli("list", "methods") == 0
    listing = capsys.readouterr().out
    assert "cnn" in listing and " year |" in listing and "| reference " in listing
    assert "ISosnovik/sesn@deaa16c" in listing and "ISosnovik/disco@f832fa0" in listing
    assert run_cli("list", "presets") == 0 and "paper" in capsys.readouterr().out
    assert run_cli("data", "build", "mnist-res") == 0
    text = capsys.readouterr().out
    assert re.search(r"train +3000 images", text) and "8:143" in text and "cache:" in text


@pytest.mark.parametrize("argv, message", [
    (["run", "--methods", "cnnn"], "did you mean 'cnn'"),
    (["run", "--dataset", "mnist-resx"], "did you mean 'mnist-res'"),
    (["run", "--seeds", "0,x"], "bad seed"),
    (["run", "--seeds", "3-1"], "end is before the start"),
    (["run", "--source", "torchvision"], "--data-root"),
    (["run", "--source", "torchvision", "--data-root", "/nonexistent/data"], "MNIST"),
    (["equivariance", "--sizes", "4,99"], "out of range"),
    (["equivariance", "--init-seeds", "0,x"], "bad init seed"),
    (["leaderboard", "/nonexistent/experiment"], "no run records"),
    (["report", "/nonexistent/experiment"], "no run records"),
    (["run", "--partition", "gpu", "--detach"], "--partition, --detach only apply to --launcher"),
    (["perf", "--sizes", "8,a"], "bad size"),
])
def test_user_errors_are_one_line_and_nonzero(argv, message, capsys, tmp_path, cache_dir):
    if argv[0] == "run":
        argv = [*argv, "--out", str(tmp_path / "e"), *TINY, *NO_REPORT]
    code = run_cli(*argv)
    err = capsys.readouterr().err
    assert code != 0
    assert message in err and err.startswith("bench: error:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run_cli("run", "--methods", "cnn", "--out", str(blocker / "exp"), *TINY, *NO_REPORT) == 2
    assert f"cannot write to --out {blocker / 'exp'}" in capsys.readouterr().err


def test_second_run_on_a_locked_experiment_exits(out, capsys):
    out.mkdir(parents=True)
    with RunStore(out).lock():
        # flock is per open file description: a second open in this process conflicts too
        assert run_cli("run", "--methods", "cnn", "--out", str(out), *TINY, *NO_REPORT) == 3
    assert f"(pid {os.getpid()})" in capsys.readouterr().err
    assert not load_records(out)


def test_ctrl_c_keeps_finished_records_and_resumes(out, capsys, monkeypatch):
    import scaleqbench.bench.launch.job as launchers

    real = launchers.run_one
    calls = []

    def interrupt_second(spec, *a, **k):
        calls.append(spec.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(spec, *a, **k)

    monkeypatch.setattr(launchers, "run_one", interrupt_second)
    assert run_cli("run", "--methods", "cnn", "--seeds", "0-2", "--out", str(out), *TINY, *NO_REPORT) == 130
    assert "re-run the same command to resume" in capsys.readouterr().out
    assert [r.seed for r in load_records(out)] == [0]
    monkeypatch.setattr(launchers, "run_one", real)
    assert run_cli("run", "--methods", "cnn", "--seeds", "0-2", "--out", str(out), *TINY, *NO_REPORT) == 0
    assert "1 already done" in capsys.readouterr().out
    assert sorted(r.seed for r in load_records(out)) == [0, 1, 2]


def test_nan_loss_fails_the_run_not_the_sweep(out, capsys, monkeypatch):
    from scaleqbench.bench.run import recipes

    def nan_loss(model, x, y):
        logits = model(x)
        return logits.sum() * float("nan"), logits

    monkeypatch.setattr(recipes, "loss_for", lambda method, config: nan_loss if method == "cnn"
                        else recipes.cross_entropy_loss)
    code = run_cli("run", "--methods", "cnn,timm:resnet18", "--out", str(out), *TINY, *NO_REPORT)
    assert code == 1  # the sweep went on, and its exit status says that a run failed
    text = capsys.readouterr().out
    assert "summary: 2 run(s) this time, 1 ok, 1 failed" in text
    recs = {r.method: r for r in load_records(out)}
    assert recs["cnn"].status == "failed" and recs["cnn"].failed_epoch == 1
    assert "non-finite loss" in recs["cnn"].error
    assert recs["timm:resnet18"].ok
    assert "failed: cnn seed 0" in text
    board = (out / "leaderboard.csv").read_text()
    assert "timm:resnet18" in board
    json.loads(recs["cnn"].path.read_text())  # the failed record is valid JSON


@pytest.mark.parametrize("content", ["text", "json", "last"])
def test_equivariance_on_a_file_that_is_not_a_checkpoint(tmp_path, capsys, cache_dir, content):
    path = tmp_path / ("run.last.pt" if content == "last" else f"run.{content}")
    if content == "last":
        import torch

        torch.save({"train": {}, "model": {}}, path)
    else:
        path.write_text("not a checkpoint\n" if content == "text" else '{"spec": {}}')
    code = run_cli("equivariance", "--checkpoint", str(path), "--images", "4", "--sizes", "8")
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("bench: error:") and err.count("\n") == 1
    assert str(path) in err and "checkpoints/<run-id>.pt" in err and "Traceback" not in err
    if content == "last":
        assert "per-epoch training state" in err
