"""A run computed locally shows as running in ``bench status`` (with its process id), takes
its run over from any Slurm job submitted for it earlier, and ``bench collect`` on a sweep
with nothing finished says what its runs are doing instead of "no run records".
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.launch.job import running_here
from scaleqbench.bench.launch.local import LocalLauncher
from scaleqbench.bench.store.ownership import load_jobs, owner
from scaleqbench.bench.launch.sweep import save_sweep, sweep_status
from scaleqbench.bench.run.pause import PAUSE_AFTER_EPOCH, PAUSE_DIR
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.locks import computing_holder
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore

from launcher_support import FakeSlurm, spec, submit
from test_slurm_cli import slurm  # noqa: F401 - the fake Slurm commands (a fixture)

pytestmark = pytest.mark.timeout(300)


def test_a_run_computed_here_shows_running_with_its_pid(tmp_path):
    a, b = spec(0), spec(1)
    save_sweep(tmp_path, [a, b], launcher="local")
    with running_here(tmp_path, a.run_id):
        assert computing_holder(tmp_path, a.run_id)[0] == str(os.getpid())
        rows = sweep_status(tmp_path)
        assert [(r["state"], r["detail"]) for r in rows] == [
            ("running", f"local, pid {os.getpid()}"), ("not submitted", "")]
    assert computing_holder(tmp_path, a.run_id) is None  # let go when the run ends
    assert [r["state"] for r in sweep_status(tmp_path)] == ["not submitted", "not submitted"]


def test_bench_status_during_a_local_sweep(tmp_path, cache_dir, monkeypatch, capsys):
    """The local launcher's real path, paused after epoch 1 (bench/run/pause.py) so that the
    test looks while the run is known to be computing."""
    pause = tmp_path / "pause"
    monkeypatch.setenv(PAUSE_DIR, str(pause))
    monkeypatch.setenv(PAUSE_AFTER_EPOCH, "1")
    s = RunSpec("cnn", epochs=1, limit_train=40, limit_eval=20, eq_images=4, experiment="exp",
                cache_dir=str(cache_dir), device="cpu")
    out = tmp_path / "exp"
    save_sweep(out, [s], launcher="local")
    local = LocalLauncher(progress=False)
    sweep = threading.Thread(target=lambda: local.follow(local.submit([s], out), out))
    sweep.start()
    try:
        deadline = time.monotonic() + 240  # a safety bound: the pause file is the event
        while not (pause / f"{s.run_id}.paused").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (pause / f"{s.run_id}.paused").exists(), "the run did not reach its pause"
        assert cli.main(["status", str(out)]) == 0
        text = capsys.readouterr().out
        assert f"local, pid {os.getpid()}" in text and "1 running" in text
        assert "not submitted" not in text
    finally:
        (pause / f"{s.run_id}.release").touch()
        sweep.join(120)
    assert not sweep.is_alive()
    assert [r["state"] for r in sweep_status(out)] == ["done"]


def test_a_local_run_takes_its_run_over_from_earlier_slurm_jobs(tmp_path):
    fake, a, b = FakeSlurm(), spec(0), spec(1)
    submit(fake, tmp_path, [a, b])  # 100_0, 100_1: then the user runs a locally
    with running_here(tmp_path, a.run_id):
        pass
    assert list(load_jobs(tmp_path)) == [b.run_id]  # bench status no longer asks Slurm of a
    assert owner(tmp_path, a.run_id) == ""
    local = RunRecord.for_spec(a, status="ok", test_acc=0.5)
    assert RunStore(tmp_path).write_job(local)
    late = RunRecord.for_spec(a, status="ok", job_id="100_0", test_acc=0.9)
    assert not RunStore(tmp_path).write_job(late)  # the earlier job no longer owns the run
    assert RunStore(tmp_path).current(a.run_id).test_acc == 0.5
    assert RunStore(tmp_path).write_job(RunRecord.for_spec(b, status="ok", job_id="100_1"))


def test_a_later_submission_keeps_a_run_taken_over_locally(tmp_path):
    """Submitting other runs later rewrites the jobs file: a run taken over locally stays
    taken over, so its earlier job, requeued by Slurm, still may not write."""
    fake, a, b, c = FakeSlurm(), spec(0), spec(1), spec(2)
    submit(fake, tmp_path, [a, b])
    with running_here(tmp_path, a.run_id):
        pass
    submit(fake, tmp_path, [c])  # a new job for another run of the folder
    assert owner(tmp_path, a.run_id) == "" and owner(tmp_path, c.run_id)
    late = RunRecord.for_spec(a, status="ok", job_id="100_0", test_acc=0.9)
    assert not RunStore(tmp_path).write_job(late)


def test_collect_while_a_run_computes_here_says_so(tmp_path, capsys):
    a = spec(0)
    RunStore(tmp_path).ensure_writable()  # as bench run leaves a folder
    save_sweep(tmp_path, [a], launcher="local")
    with running_here(tmp_path, a.run_id):
        assert cli.main(["collect", str(tmp_path)]) == 0
    said = capsys.readouterr()
    assert ("none of the 1 run(s) of the sweep in" in said.out
            and "has finished yet (1 running)" in said.out)
    assert "nothing to collate yet" in said.out and not said.err


def test_collect_before_slurm_lists_the_jobs_names_the_sweeps_runs(
        slurm, tmp_path, cache_dir, capsys):  # noqa: F811 - slurm: the fixture
    """Just after ``--detach``, before sacct or squeue list the job: not "run bench run there
    first", but what the sweep's runs are doing."""
    out = tmp_path / "exp"
    assert cli.main(["run", "--methods", "cnn", "--seeds", "0,1", "--limit-train", "40",
                     "--limit-eval", "20", "--epochs", "1", "--quiet", "--no-report",
                     "--out", str(out), "--launcher", "slurm", "--detach"]) == 0
    capsys.readouterr()
    assert cli.main(["collect", str(out)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("bench: error: no run records under") and err.count("\n") == 1
    assert "none of the 2 run(s) of its sweep has finished (2 unknown)" in err
    assert "Slurm cannot say now" in err and "there first" not in err
    (slurm / "squeue").write_text("4242_0|PENDING|Priority\n4242_1|PENDING|Priority\n")
    assert cli.main(["collect", str(out)]) == 0
    assert "has finished yet (2 queued)" in capsys.readouterr().out


def test_collect_on_a_sweep_never_submitted_says_how_to_start_it(tmp_path, capsys):
    RunStore(tmp_path).ensure_writable()
    save_sweep(tmp_path, [spec(0)], launcher="local")
    assert cli.main(["collect", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "(1 not submitted); none was ever submitted: run `bench run --out" in err
