"""The Slurm launcher's state logic against a fake cluster: submitting, following, settling
runs from records and Slurm states, ``bench status`` rows and damaged records.

No Slurm is needed: ``FakeSlurm`` (``launcher_support``) stands in for the cluster (the
``SlurmScheduler`` seam) and moves the world between polls, so the follower,
``bench status`` and ``bench collect`` logic run in the default suite. The
real cluster is exercised by tests/test_slurm.py (``-m slurm``).
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path

import pytest

from scaleqbench.bench.launch import job as job_module
from scaleqbench.bench.launch.job import SweepJob
from scaleqbench.bench.launch.registry import LAUNCHERS
from scaleqbench.bench.launch.sweep import settle_sweep, sweep_status
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore, unfinished_record
from scaleqbench.bench.launch.slurm import SlurmLauncher, classify, job_logs
from scaleqbench.bench.store.ownership import load_jobs
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.launch.sweep import run_states, save_sweep

from launcher_support import FakeSlurm, job_writes, launcher, spec, submit


@pytest.mark.parametrize("state, kind", [
    ("PENDING", "queued"), ("REQUEUED", "queued"), ("RUNNING", "running"),
    ("COMPLETING", "running"), ("COMPLETED", "done"), ("CANCELLED by 0", "cancelled"),
    ("CANCELLED+", "cancelled"), ("TIMEOUT", "timed out"), ("NODE_FAIL", "node failed"),
    ("OUT_OF_MEMORY", "failed"), ("FAILED", "failed"), ("", "unknown"), ("WEIRD", "unknown"),
])
def test_classify_maps_slurm_states(state, kind):
    assert classify(state) == kind


def test_submit_registers_job_ids_and_attempts(tmp_path):
    fake, a, b = FakeSlurm(), spec(0), spec(1)
    sub = submit(fake, tmp_path, [a, b])
    assert dict(sub.jobs) == {a.run_id: "100_0", b.run_id: "100_1"}
    assert sub.summary == "submitted 2 task(s) as Slurm job 100"
    assert all(isinstance(j, SweepJob) for j in fake.submitted[0][1])
    launcher(fake).submit([b], tmp_path)  # a retry: a new job, the old one kept as an attempt
    jobs = load_jobs(tmp_path)
    assert jobs[b.run_id] == {"attempts": ["100_1", "101_0"], "job_id": "101_0"}
    assert jobs[a.run_id]["attempts"] == ["100_0"]
    assert launcher(fake).submit([], tmp_path).jobs == {} and fake.arrays == 102


def test_follow_settles_runs_from_records_and_ended_states(tmp_path):
    fake, a, b, c = FakeSlurm(), spec(0), spec(1), spec(2)
    sub = submit(fake, tmp_path, [a, b, c])

    def world(poll: int) -> None:
        if poll == 1:
            fake.jobs.update({"100_0": "RUNNING", "100_1": "RUNNING", "100_2": "RUNNING"})
        if poll == 2:  # a's job writes its record while Slurm still says RUNNING
            job_writes(tmp_path, a, "100_0")
        if poll == 3:
            fake.jobs.update({"100_1": "CANCELLED by 0", "100_2": "COMPLETED"})

    fake.before_poll = world
    assert launcher(fake).follow(sub, tmp_path) == {a.run_id: "done", b.run_id: "cancelled",
                                                    c.run_id: "failed"}
    cancelled = RunStore(tmp_path).current(b.run_id)
    assert cancelled.status == "failed" and cancelled.end_state == "cancelled"
    assert cancelled.settled_by == "slurm" and cancelled.job_id == "100_1"
    assert "Slurm job 100_1 ended CANCELLED by 0" in cancelled.error
    assert RunStore(tmp_path).read(b.run_id).backend_state == "CANCELLED by 0"
    assert "COMPLETED without writing a record" in RunStore(tmp_path).current(c.run_id).error
    assert RunStore(tmp_path).current(a.run_id).ok


def test_a_jobs_own_failure_beats_the_slurm_state(tmp_path):
    fake, a = FakeSlurm(), spec(0)
    sub = submit(fake, tmp_path, [a])
    job_writes(tmp_path, a, "100_0", status="failed", error="Traceback ...\nValueError: bad")
    fake.jobs["100_0"] = "FAILED"
    assert launcher(fake).follow(sub, tmp_path) == {a.run_id: "failed"}
    record = RunStore(tmp_path).current(a.run_id)
    assert record.last_error_line == "ValueError: bad" and not record.settled_by


def test_an_older_record_does_not_settle_a_new_job(tmp_path):
    fake, a = FakeSlurm(), spec(0)
    RunStore(tmp_path).write(unfinished_record(a, launcher="slurm", job_id="7_0",
                                             end_state="timed out", error="old"))
    sub = submit(fake, tmp_path, [a])
    fake.before_poll = lambda poll: poll == 2 and job_writes(tmp_path, a, "100_0")
    assert launcher(fake).follow(sub, tmp_path) == {a.run_id: "done"}
    assert fake.polls == 2  # the old job's failure did not end the new job's run at poll 1


def test_follow_warns_once_while_the_controller_is_down_and_goes_on_from_records(
        tmp_path, caplog):
    fake, a, b = FakeSlurm(), spec(0), spec(1)
    sub = submit(fake, tmp_path, [a, b])

    def world(poll: int) -> None:
        fake.down = 2 <= poll <= 5  # the controller dies after the first poll
        if poll == 1:
            fake.jobs.update({"100_0": "RUNNING", "100_1": "RUNNING"})
        if poll == 3:
            job_writes(tmp_path, a, "100_0")
        if poll == 4:
            job_writes(tmp_path, b, "100_1", status="failed", error="RuntimeError: boom")
            fake.jobs["100_1"] = "RUNNING"  # what a stale answer would say

    fake.before_poll = world
    with caplog.at_level(logging.INFO, logger="scaleqbench.bench.launch.slurm"):
        final = launcher(fake).follow(sub, tmp_path)
    assert final == {a.run_id: "done", b.run_id: "failed"}
    assert fake.polls == 4  # both settled from their records, the controller still down
    down = [r for r in caplog.records if "does not answer" in r.getMessage()]
    assert len(down) == 1 and down[0].levelno == logging.WARNING
    assert "following the runs from their records" in down[0].getMessage()


def test_follow_says_when_the_controller_is_back_and_settles_from_its_states(tmp_path, caplog):
    fake, a = FakeSlurm(), spec(0)
    sub = submit(fake, tmp_path, [a])

    def world(poll: int) -> None:
        fake.down = poll in (1, 2, 3)
        if poll == 4:
            fake.jobs["100_0"] = "TIMEOUT"

    fake.before_poll = world
    with caplog.at_level(logging.INFO, logger="scaleqbench.bench.launch.slurm"):
        assert launcher(fake).follow(sub, tmp_path) == {a.run_id: "timed out"}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("does not answer" in m for m in messages) == 1
    assert sum(m.startswith("Slurm answers again") for m in messages) == 1


def test_follow_gives_up_at_its_timeout(tmp_path):
    fake, a = FakeSlurm(), spec(0)
    sub = submit(fake, tmp_path, [a])
    assert launcher(fake).follow(sub, tmp_path, timeout_s=0) == {}
    assert RunStore(tmp_path).current(a.run_id) is None


def test_a_cancelled_task_that_finishes_later_keeps_its_settled_record(tmp_path, cache_dir,
                                                                       monkeypatch):
    """Issue 13 case 3: submitit ignores the first SIGTERM, so a task scancel hits near its end
    finishes after the follower recorded it cancelled (and wrote the leaderboard)."""
    fake = FakeSlurm()
    s = RunSpec("cnn", epochs=1, limit_train=40, limit_eval=20, eq_images=4, experiment="exp",
                cache_dir=str(cache_dir))
    sub = submit(fake, tmp_path, [s])
    fake.jobs["100_0"] = "CANCELLED by 0"
    assert launcher(fake).follow(sub, tmp_path) == {s.run_id: "cancelled"}
    settled = RunStore(tmp_path).path(s.run_id).read_text()

    # the cancelled task's process runs to its end: the real job, with its job id
    monkeypatch.setattr(job_module, "_job_context", lambda: {"job_id": "100_0"})
    summary = fake.submitted[0][1][0]()
    assert summary == {"run_id": s.run_id, "status": "ok"}  # it did finish ...
    assert RunStore(tmp_path).path(s.run_id).read_text() == settled  # ... and changed nothing
    assert run_states(tmp_path, launcher(fake).states(tmp_path, [s]))[0]["state"] == "cancelled"

    # a new attempt (another job, submitted for the run: its owner now) and a run in this
    # process may write
    assert launcher(fake).submit([s], tmp_path).jobs == {s.run_id: "101_0"}
    assert job_writes(tmp_path, s, "101_0") and RunStore(tmp_path).current(s.run_id).ok
    assert RunStore(tmp_path).write_job(RunRecord.for_spec(s, status="failed"))  # in-process
    assert not RunStore(tmp_path).current(s.run_id).ok


def test_settling_waits_for_a_job_writing_its_record_and_keeps_it(tmp_path):
    a = spec(0)
    record = unfinished_record(a, launcher="slurm", job_id="100_0", end_state="cancelled",
                               error="cancelled")
    stood = []
    with RunStore(tmp_path).run_lock(a.run_id):  # the job holds the lock: it checked, now it writes
        settler = threading.Thread(
            target=lambda: stood.append(RunStore(tmp_path).settle(a, "100_0", record)))
        settler.start()
        settler.join(0.3)
        assert settler.is_alive()  # the launcher waits for the lock
        RunStore(tmp_path).write(RunRecord.for_spec(a, status="ok", job_id="100_0"))
    settler.join(5)
    assert stood[0].ok and RunStore(tmp_path).current(a.run_id).ok


def test_settle_keeps_a_newer_ok_record(tmp_path):
    a = spec(0)
    RunStore(tmp_path).write(RunRecord.for_spec(a, status="ok"))  # re-run in this process
    record = unfinished_record(a, launcher="slurm", job_id="100_0", end_state="cancelled",
                               error="cancelled")
    assert RunStore(tmp_path).settle(a, "100_0", record).ok
    assert RunStore(tmp_path).current(a.run_id).job_id is None


def test_states_and_status_rows(tmp_path, monkeypatch):
    fake = FakeSlurm()
    # status and collect build the sweep's launchers from the registry: give them the fake
    monkeypatch.setitem(LAUNCHERS, "slurm", partial(SlurmLauncher, progress=False, poll_s=0,
                                                    scheduler=fake))
    done, running, retry, cancelled, unsent = (spec(i) for i in range(5))
    save_sweep(tmp_path, [done, running, retry, cancelled, unsent], launcher="slurm")
    slurm = launcher(fake)
    slurm.submit([done, running, retry, cancelled], tmp_path)
    job_writes(tmp_path, done, "100_0", test_acc=0.875)
    RunStore(tmp_path).write(RunRecord.for_spec(retry, status="failed", job_id="9_0",
                                              error="boom"))
    fake.jobs.update({"100_0": "COMPLETED", "100_1": "RUNNING", "100_2": "PENDING",
                      "100_3": "CANCELLED by 0"})
    stderr = Path(job_logs(tmp_path, "100_3")[0])
    stderr.parent.mkdir(parents=True, exist_ok=True)
    stderr.write_text("starting\nslurmstepd: error: *** JOB 100_3 CANCELLED ***\n")
    rows = {r["run_id"]: r for r in sweep_status(tmp_path)}
    assert rows[cancelled.run_id]["state"] == "cancelled"  # ended, not settled yet
    assert "no record yet" in rows[cancelled.run_id]["detail"]
    assert settle_sweep(tmp_path) == 1 and settle_sweep(tmp_path) == 0
    rows = {r["run_id"]: r for r in sweep_status(tmp_path)}
    state = {rid: r["state"] for rid, r in rows.items()}
    assert state == {done.run_id: "done", running.run_id: "running", retry.run_id: "queued",
                     cancelled.run_id: "cancelled", unsent.run_id: "not submitted"}
    assert rows[done.run_id]["detail"] == "test acc 87.50 %"
    assert rows[retry.run_id]["detail"] == "PENDING (retry of a failed run)"
    assert rows[running.run_id]["job"] == "100_1" and rows[unsent.run_id]["job"] == ""
    assert "JOB 100_3 CANCELLED" in rows[cancelled.run_id]["detail"]

    fake.down = True  # what status says when Slurm cannot
    rows = {r["run_id"]: r for r in sweep_status(tmp_path)}
    assert rows[running.run_id]["state"] == "unknown"
    assert "does not answer" in rows[running.run_id]["detail"]
    assert rows[done.run_id]["state"] == "done" and rows[cancelled.run_id]["state"] == "cancelled"


def test_settle_does_nothing_while_slurm_cannot_say(tmp_path, caplog):
    fake, a = FakeSlurm(down=True), spec(0)
    submit(fake, tmp_path, [a])
    assert launcher(fake).settle(tmp_path, [a]) == 0
    assert RunStore(tmp_path).current(a.run_id) is None
    assert "cannot settle 1 Slurm task(s) now" in caplog.text


def _damage(out: Path, s: RunSpec) -> Path:
    """A record file cut short (a copy interrupted half-way, a full disk)."""
    path = RunStore(out).path(s.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"schema_version": 2, "run_id": "')
    return path


def test_status_shows_a_damaged_record_unless_its_job_is_still_out_there(tmp_path,
                                                                         monkeypatch):
    fake = FakeSlurm()
    monkeypatch.setitem(LAUNCHERS, "slurm", partial(SlurmLauncher, progress=False, poll_s=0,
                                                    scheduler=fake))
    ended, running = spec(0), spec(1)
    submit(fake, tmp_path, [ended, running])
    fake.jobs.update({"100_0": "COMPLETED", "100_1": "RUNNING"})
    path = _damage(tmp_path, ended)
    _damage(tmp_path, running)
    rows = {r["run_id"]: r for r in sweep_status(tmp_path)}
    assert rows[ended.run_id]["state"] == "corrupt record"
    assert f"{path} is not a readable run record" in rows[ended.run_id]["detail"]
    assert "`bench run` moves it aside" in rows[ended.run_id]["detail"]
    assert rows[running.run_id]["state"] == "running"  # its job will write the record


@pytest.mark.parametrize("how", ["follow", "collect"])
def test_settling_a_run_moves_its_damaged_record_aside(tmp_path, monkeypatch, caplog, how):
    fake, a = FakeSlurm(), spec(0)
    monkeypatch.setitem(LAUNCHERS, "slurm", partial(SlurmLauncher, progress=False, poll_s=0,
                                                    scheduler=fake))
    sub = submit(fake, tmp_path, [a])
    path = _damage(tmp_path, a)
    damaged = path.read_bytes()
    fake.jobs["100_0"] = "RUNNING"
    fake.before_poll = lambda poll: poll == 3 and fake.jobs.update({"100_0": "TIMEOUT"})
    with caplog.at_level(logging.WARNING):
        if how == "follow":
            assert launcher(fake).follow(sub, tmp_path) == {a.run_id: "timed out"}
        else:
            assert settle_sweep(tmp_path) == 0  # still running: the file stays as it is
            assert path.read_bytes() == damaged
            assert settle_sweep(tmp_path) == 0 and settle_sweep(tmp_path) == 1
    record = RunStore(tmp_path).current(a.run_id)
    assert record.settled_by == "slurm" and record.end_state == "timed out"
    (aside,) = path.parent.glob(f"{path.name}.corrupt-*")
    assert aside.read_bytes() == damaged  # moved, never deleted
    said = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(said) == 2  # once when settling, once when moving it (not at every poll)
    assert "recording how the job ended instead" in said[0] and aside.name in said[1]


def test_a_job_writes_over_a_damaged_record_moving_it_aside(tmp_path, caplog):
    a = spec(0)
    path = _damage(tmp_path, a)
    assert job_writes(tmp_path, a, "100_0")
    assert RunStore(tmp_path).current(a.run_id).ok
    assert len(list(path.parent.glob(f"{path.name}.corrupt-*"))) == 1
    assert "moved to" in caplog.text
