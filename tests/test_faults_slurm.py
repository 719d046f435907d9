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
from scaleqbench.bench.launch.sweep import sweep_file

# fake_runs: a fixture, found by pytest under this name
from faults_support import bench, fake_runs, one_line, records, TINY
from launcher_support import FakeSlurm

pytestmark = pytest.mark.timeout(60)


# ---- Slurm (cases 3, 4, 9, 13), with a fake cluster -------------------------------------------

class FakeCluster(FakeSlurm):
    """Submits by running nothing; ``tasks`` are run by the test (or the poll hook)."""

    def __init__(self, down_at_submit: bool = False):
        super().__init__()
        self.down_at_submit, self.tasks = down_at_submit, []

    def submit(self, jobs, folder, config, name):
        if self.down_at_submit:
            raise LauncherError("Slurm did not take the job array (sbatch: error: Unable to "
                                "contact slurm controller); check the cluster with `sinfo`, "
                                "or run with --launcher local")
        ids = [f"7_{i}" for i in range(len(jobs))]
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
