"""Injected Slurm faults, with a fake cluster: a controller down at submit, a silent
controller, a cancelled task that finishes later. No finished record is lost and nothing
hangs (see tests/test_faults.py for how each fault is checked).
"""

from __future__ import annotations

import json

import pytest

from scaleqbench.bench.launch import job as job_module
from scaleqbench.bench.errors import LauncherError
from scaleqbench.bench.launch.slurm import SlurmLauncher
from scaleqbench.bench.store.ownership import load_jobs
from scaleqbench.bench.launch.sweep import load_sweep, run_states, sweep_file
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore

# fake_runs: a fixture, found by pytest under this name
from faults_support import bench, fake_runs, one_line, records, TINY
from launcher_support import FakeSlurm, launcher

pytestmark = pytest.mark.timeout(60)


# ---- Slurm (cases 3, 4, 9, 13), with a fake cluster -------------------------------------------

class FakeCluster(FakeSlurm):
    """Submits by running nothing; ``tasks`` are run by the test (or the poll hook)."""

    def __init__(self, down_at_submit: bool = False):
        super().__init__(arrays=7)  # the first array is job 7, the next 8...
        self.down_at_submit, self.tasks = down_at_submit, []

    def submit(self, jobs, folder, config, name):
        if self.down_at_submit:
            raise LauncherError("Slurm did not take the job array (sbatch: error: Unable to "
                                "contact slurm controller); check the cluster with `sinfo`, "
                                "or run with --launcher local")
        ids = [f"{self.arrays}_{i}" for i in range(len(jobs))]
        self.arrays += 1
        self.jobs.update(dict.fromkeys(ids, "PENDING"))
        self.tasks += list(zip(ids, jobs))
        return ids


@pytest.fixture()
def cluster(monkeypatch):
    fake = FakeCluster()

    def from_options(cls, options, progress):
        return cls(progress=False, poll_s=0, scheduler=fake)

    monkeypatch.setattr(SlurmLauncher, "from_options", classmethod(from_options))
    return fake


@pytest.mark.parametrize("fresh", [True, False], ids=["new-folder", "existing-folder"])
def test_slurm_down_at_submit_leaves_nothing_behind(fresh, tmp_path, cluster, fake_runs, capsys):
    out = tmp_path / "exp"
    before, sweep = {}, None
    if not fresh:
        assert bench("run", *TINY, "--out", out) == 0
        before, sweep = records(out), sweep_file(out).read_bytes()
        capsys.readouterr()
    cluster.down_at_submit = True
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out, "--launcher", "slurm") == 2
    one_line(capsys.readouterr().err, "Unable to contact slurm controller")
    if fresh:
        assert not out.exists(), "a refused sweep left its folder"
    else:
        assert sweep_file(out).read_bytes() == sweep  # no phantom "not submitted" runs
        assert records(out) == before


def test_a_silent_controller_is_followed_from_the_records(tmp_path, cluster, fake_runs,
                                                          monkeypatch, capsys, caplog):
    out = tmp_path / "exp"

    def world(poll: int) -> None:
        cluster.down = True  # slurmctld killed: the tasks still run and write their records
        if poll == 2:
            monkeypatch.setattr(job_module, "_job_context", lambda: {"job_id": "7_0"})
            cluster.tasks[0][1]()
        if poll == 3:
            monkeypatch.setattr(job_module, "_job_context", lambda: {"job_id": "7_1"})
            cluster.tasks[1][1]()

    cluster.before_poll = world
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out, "--launcher", "slurm") == 0
    assert len(records(out)) == 2
    down = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(down) == 1


def test_a_cancelled_task_that_finishes_later_changes_no_record(tmp_path, cluster, fake_runs,
                                                                monkeypatch, capsys):
    out = tmp_path / "exp"

    def world(poll: int) -> None:
        cluster.jobs["7_0"] = "CANCELLED by 0"

    cluster.before_poll = world
    assert bench("run", *TINY, "--out", out, "--launcher", "slurm") == 1  # it failed
    settled = records(out)
    # the cancelled task's process goes on to its end and tries to write
    monkeypatch.setattr(job_module, "_job_context", lambda: {"job_id": "7_0"})
    cluster.tasks[0][1]()
    assert records(out) == settled
    [rec] = [json.loads(v) for v in settled.values()]
    assert rec["status"] == "failed" and rec["end_state"] == "cancelled"


def status(cluster, out):
    """``bench status``'s rows, the fake cluster answering."""
    specs = load_sweep(out)
    return run_states(out, launcher(cluster).states(out, specs), specs)


def test_a_stale_task_that_slurm_requeued_cannot_replace_a_newer_result(
        tmp_path, cluster, fake_runs, monkeypatch, caplog):
    """A node goes down mid-run: bench records tasks 41_0 and 41_1 as failed (NODE_FAIL), but
    Slurm requeues them by itself. A re-run with --detach submits job 45, whose tasks now own
    the runs (jobs.json). A stale task neither trains nor writes: 41_1, which started while
    it still owned its run, is refused at its write; 41_0, which starts after 45_0 recorded
    its result, leaves at its start. A record settled for 45_1 stays as it is."""
    out = tmp_path / "exp"
    cluster.arrays = 41
    cluster.before_poll = lambda poll: cluster.jobs.update({"41_0": "NODE_FAIL",
                                                            "41_1": "NODE_FAIL"})
    assert bench("run", *TINY, "--seeds", "0,1", "--out", out, "--launcher", "slurm") == 1
    assert [r["state"] for r in status(cluster, out)] == ["node failed", "node failed"]
    cluster.before_poll = None
    cluster.jobs.update({"41_0": "PENDING", "41_1": "PENDING"})  # Slurm requeued them itself
    a, b = (RunSpec.from_json(json.loads(p.read_text())["spec"])
            for p in sorted((out / "runs").glob("*.json")))
    a, b = sorted((a, b), key=lambda s: s.seed)
    tasks = dict(cluster.tasks)

    def start(job_id: str):
        monkeypatch.setattr(job_module, "_job_context", lambda: {"job_id": job_id})
        return tasks[job_id]()

    # stale 41_1 starts while it still owns its run; while it trains, the user re-runs
    cluster.arrays = 45

    def rerun_meanwhile(spec, n):
        if n == 1:
            assert bench("run", *TINY, "--seeds", "0,1", "--out", out, "--launcher", "slurm",
                         "--detach") == 0
            tasks.update(cluster.tasks)
    fake_runs["before"] = rerun_meanwhile
    assert start("41_1") == {"run_id": b.run_id, "status": "ok"}  # it trained ...
    assert {r: e["job_id"] for r, e in load_jobs(out).items()} == {a.run_id: "45_0",
                                                                   b.run_id: "45_1"}
    assert RunStore(out).current(b.run_id).job_id == "41_1"  # ... and its result was dropped
    assert not RunStore(out).current(b.run_id).ok
    fake_runs["before"] = None

    assert start("45_0") == {"run_id": a.run_id, "status": "ok"}
    newer = RunStore(out).path(a.run_id).read_bytes()
    caplog.clear()
    trained = len(fake_runs["calls"])
    assert start("41_0") == {"run_id": a.run_id, "status": None}  # the stale task leaves
    assert len(fake_runs["calls"]) == trained  # without training
    assert RunStore(out).path(a.run_id).read_bytes() == newer
    [said] = [r.getMessage() for r in caplog.records if "41_0" in r.getMessage()]
    assert "job 41_0 no longer owns the run: job 45_0 does" in said

    # 45_1 is cancelled and settled (bench collect); a stale task's write leaves that record
    cluster.jobs["45_1"] = "CANCELLED by 0"
    assert launcher(cluster).settle(out, [a, b]) == 1
    settled = RunStore(out).path(b.run_id).read_bytes()
    assert RunStore(out).current(b.run_id).job_id == "45_1"
    late = RunRecord.for_spec(b, status="ok", job_id="41_1", test_acc=0.9, params=1)
    assert not RunStore(out).write_job(late)
    assert RunStore(out).path(b.run_id).read_bytes() == settled
    assert [(r["state"], r["job"]) for r in status(cluster, out)] == [("done", "45_0"),
                                                             ("cancelled", "45_1")]
