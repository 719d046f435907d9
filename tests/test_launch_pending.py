"""Slurm jobs that wait: their pending reason in ``bench status`` and the follower's progress,
and the jobs that can never start as submitted (``--cpus-per-job 64`` on 2-CPU nodes:
``PartitionConfig``), which the follower cancels and records instead of waiting for ever.

A fake cluster (``launcher_support.FakeSlurm``) says what Slurm would say; the fake Slurm
commands of tests/test_slurm_cli.py check how ``squeue``'s reasons are read.
"""

from __future__ import annotations

import logging

import pytest

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.launch.slurm import SlurmLauncher
from scaleqbench.bench.launch.slurm_pending import never_starts, pending_reason, progress
from scaleqbench.bench.launch.slurm_scheduler import SubmititScheduler
from scaleqbench.bench.launch.sweep import run_states
from scaleqbench.bench.store.run_store import RunStore

from launcher_support import FakeSlurm, launcher, spec, submit
from test_slurm_cli import slurm  # noqa: F401 - the fake Slurm commands (a fixture)

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("state, reason, never", [
    ("PENDING (PartitionConfig)", "PartitionConfig", True),
    ("PENDING (PartitionTimeLimit)", "PartitionTimeLimit", True),
    ("PENDING (BadConstraints)", "BadConstraints", True),
    ("PENDING (InvalidAccount)", "InvalidAccount", True),
    ("PENDING (QOSMaxCpuPerJobLimit)", "QOSMaxCpuPerJobLimit", True),
    ("PENDING (AssocMaxWallDurationPerJobLimit)", "AssocMaxWallDurationPerJobLimit", True),
    ("PENDING (QOSMinCpuNotSatisfied)", "QOSMinCpuNotSatisfied", True),
    ("PENDING (DependencyNeverSatisfied)", "DependencyNeverSatisfied", True),
    # they pass: other jobs end, nodes come back, a person releases a hold
    ("PENDING (Resources)", "Resources", False),
    ("PENDING (Priority)", "Priority", False),
    ("PENDING (QOSMaxJobsPerUserLimit)", "QOSMaxJobsPerUserLimit", False),
    ("PENDING (AssocMaxJobsLimit)", "AssocMaxJobsLimit", False),
    ("PENDING (QOSGrpCpuLimit)", "QOSGrpCpuLimit", False),
    ("PENDING (ReqNodeNotAvail, UnavailableNodes:n1)", "ReqNodeNotAvail, UnavailableNodes:n1",
     False),
    ("PENDING (PartitionNodeLimit)", "PartitionNodeLimit", False),
    ("PENDING (JobHeldUser)", "JobHeldUser", False),
    ("PENDING", "", False),
    ("RUNNING", "", False),
    ("CANCELLED by 0", "", False),
])
def test_which_reasons_mean_a_job_can_never_start(state, reason, never):
    assert pending_reason(state) == reason
    blocked = never_starts(state)
    assert (blocked is not None) == never
    if never:
        line = blocked.line(["45_0"])
        assert line.startswith("Slurm job 45_0 can never start as submitted: pending for "
                               + reason.split(",")[0])
        assert "\n" not in line and line.endswith(blocked.change)  # and what to change


def test_partition_config_says_what_to_change():
    line = never_starts("PENDING (PartitionConfig)").line(["45_1", "45_0"])
    assert line.startswith("Slurm jobs 45_0, 45_1 can never start as submitted")
    many = never_starts("PENDING (PartitionConfig)").line([f"94_{i}" for i in range(12)])
    assert many.startswith("Slurm jobs 94_0 ... 94_11 (12 tasks) can never start")
    assert "--cpus-per-job" in line and "sinfo" in line


def test_the_followers_progress_says_why_jobs_wait():
    live = {"a": "PENDING (Resources)", "b": "PENDING (Priority)", "c": "RUNNING",
            "d": "no answer", "e": "PENDING (Resources)"}
    assert progress(live, {"f": "done"}) == {"queued": 3, "running": 1, "no answer": 1,
                                             "done": 1, "waiting for": "Priority,Resources"}
    assert progress({"a": "PENDING"}, {}) == {"queued": 1}


def test_the_follower_cancels_a_job_that_can_never_start_and_records_why(tmp_path, caplog):
    fake, a, b = FakeSlurm(), spec(0), spec(1)
    sub = submit(fake, tmp_path, [a, b])

    def world(poll: int) -> None:
        if poll == 1:
            fake.jobs.update({"100_0": "PENDING (Priority)", "100_1": "PENDING (PartitionConfig)"})
        if poll == 2:
            fake.jobs["100_0"] = "COMPLETED"  # it waited, then ran (without a record here)

    fake.before_poll = world
    caplog.set_level(logging.WARNING)
    final = launcher(fake).follow(sub, tmp_path)
    assert final == {a.run_id: "failed", b.run_id: "cancelled"}
    assert fake.cancelled == ["100_1"]  # bench cancelled it; the job that waited ran on
    [said] = [r.getMessage() for r in caplog.records if "never start" in r.getMessage()]
    assert said.startswith("Slurm job 100_1 can never start as submitted: pending for "
                           "PartitionConfig (no node of the partition has what each task "
                           "asks for)")
    assert "--cpus-per-job" in said and "bench cancelled it" in said
    rec = RunStore(tmp_path).current(b.run_id)
    assert rec.status == "failed" and rec.end_state == "cancelled" and rec.job_id == "100_1"
    assert rec.backend_state == "PENDING (PartitionConfig)" and "can never start" in rec.error
    # settled: bench status shows it cancelled, whatever Slurm says of the job now
    rows = run_states(tmp_path, launcher(fake).states(tmp_path, [a, b]), [a, b])
    assert [r["state"] for r in rows] == ["failed", "cancelled"]


def test_status_shows_the_pending_reason_and_a_job_that_can_never_start(tmp_path):
    fake, a, b = FakeSlurm(), spec(0), spec(1)
    submit(fake, tmp_path, [a, b])
    fake.jobs.update({"100_0": "PENDING (Resources)", "100_1": "PENDING (PartitionConfig)"})
    rows = run_states(tmp_path, launcher(fake).states(tmp_path, [a, b]), [a, b])
    assert [(r["state"], r["job"]) for r in rows] == [("queued", "100_0"), ("queued", "100_1")]
    assert rows[0]["detail"] == "PENDING (Resources)"
    assert rows[1]["detail"].startswith("Slurm job 100_1 can never start as submitted: "
                                        "pending for PartitionConfig")
    assert "`scancel 100_1`" in rows[1]["detail"]
    assert not fake.cancelled  # status only looks


def test_bench_run_stops_waiting_for_a_job_that_can_never_start(tmp_path, cache_dir,
                                                                 monkeypatch, capsys, caplog):
    """``--cpus-per-job 64`` on 2-CPU nodes: Slurm keeps the task PENDING (PartitionConfig) for
    ever. The foreground run cancels it, says so, and exits 1."""
    fake = FakeSlurm()
    fake.before_poll = lambda poll: fake.jobs.update(
        {j: "PENDING (PartitionConfig)" for j in fake.jobs if j.startswith("100_")})
    monkeypatch.setattr(SlurmLauncher, "from_options", classmethod(
        lambda cls, options, progress: cls(progress=False, poll_s=0, scheduler=fake)))
    out = tmp_path / "exp"
    code = cli.main(["run", "--methods", "cnn", "--limit-train", "40", "--limit-eval", "20",
                     "--epochs", "1", "--quiet", "--no-report", "--out", str(out),
                     "--launcher", "slurm", "--cpus-per-job", "64"])
    assert code == 1
    assert fake.cancelled == ["100_0"]
    assert "failed: cnn seed 0: Slurm job 100_0 can never start" in capsys.readouterr().out


def test_squeue_gives_the_reason_of_a_pending_job(slurm):  # noqa: F811 - the fixture
    (slurm / "sacct").write_text("4242_0|PENDING\n4242_1|PENDING\n4242_2|RUNNING\n")
    (slurm / "squeue").write_text("4242_0|PENDING|PartitionConfig\n4242_1|PENDING|None\n"
                                  "4242_3|RUNNING|None\n")
    assert SubmititScheduler().states(["4242_0", "4242_1", "4242_2", "4242_3", "4242_4"]) == {
        "4242_0": "PENDING (PartitionConfig)", "4242_1": "PENDING", "4242_2": "RUNNING",
        "4242_3": "RUNNING",  # sacct did not list it yet; the controller's queue did
        "4242_4": "UNKNOWN"}
    SubmititScheduler().cancel(["4242_1", "4242_0"])
    assert (slurm / "scancel.calls").read_text().split() == ["4242_0", "4242_1"]


def test_a_queue_that_cannot_say_leaves_saccts_states(slurm):  # noqa: F811 - the fixture
    (slurm / "sacct").write_text("4242|PENDING\n")
    (slurm / "squeue").write_text("garbage without separators\n")
    assert SubmititScheduler().states(["4242"]) == {"4242": "PENDING"}
