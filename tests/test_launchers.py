"""The launcher interface and the Slurm launcher's state logic, against a fake cluster.

No Slurm is needed: :class:`FakeSlurm` stands in for the cluster (the
``SlurmScheduler`` seam) and moves the world between polls, so the follower,
``bench status`` and ``bench collect`` logic run in the default suite. The
real cluster is exercised by tests/test_slurm.py (``-m slurm``).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import threading
import time
from functools import partial
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.cli.cmd_run import cmd_run
from scaleqbench.bench.cli.cmd_status import cmd_status
from scaleqbench.bench.launch import job as job_module
from scaleqbench.bench.launch import processes
from scaleqbench.bench.launch import task as task_module
from scaleqbench.bench.launch.slurm_config import SlurmConfig
from scaleqbench.bench.launch.task import SweepTask
from scaleqbench.bench.run.pause import PAUSE_AFTER_EPOCH, PAUSE_DIR
from scaleqbench.bench.store.checkpoint import last_checkpoint_path
from scaleqbench.bench.errors import BadArgumentError, UnknownNameError
from scaleqbench.bench.launch.job import SweepJob
from scaleqbench.bench.launch.api import RunState, SchedulerUnavailable, Submission
from scaleqbench.bench.launch.registry import LAUNCHERS, make_launcher
from scaleqbench.bench.launch.local import LocalLauncher
from scaleqbench.bench.launch.sweep import settle_sweep, sweep_status
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore, unfinished_record
from scaleqbench.bench.launch.slurm import SlurmLauncher, classify, job_logs, load_jobs
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.launch.sweep import load_sweep, run_states, save_sweep, sweep_launchers


@dataclass
class FakeSlurm:
    """A cluster in memory: job states the test sets, a controller that can go down, and a hook
    that moves the world before each poll answers."""

    jobs: dict[str, str] = field(default_factory=dict)
    down: bool = False
    before_poll: Callable[[int], None] | None = None
    polls: int = 0
    arrays: int = 100
    submitted: list = field(default_factory=list)

    def submit(self, jobs, folder, config, name):
        ids = [f"{self.arrays}_{i}" for i in range(len(jobs))]
        self.arrays += 1
        self.jobs.update(dict.fromkeys(ids, "PENDING"))
        self.submitted.append((ids, list(jobs), config, name))
        return ids

    def states(self, job_ids):
        self.polls += 1
        if self.before_poll is not None:
            self.before_poll(self.polls)
        if self.down:
            raise SchedulerUnavailable("the Slurm controller does not answer (fake)")
        return {j: self.jobs.get(j, "UNKNOWN") for j in job_ids}


def spec(seed: int = 0, method: str = "cnn") -> RunSpec:
    return RunSpec(method, seed=seed, epochs=1, limit_train=40, limit_eval=20, eq_images=4,
                   experiment="exp")


def job_writes(out: Path, s: RunSpec, job_id: str, status: str = "ok", **extra) -> bool:
    """What a task's SweepJob does at its end: write its record through the guard."""
    rec = RunRecord.for_spec(s, status=status, job_id=job_id, **{"test_acc": 0.5, **extra})
    return RunStore(out).write_job(rec)


def launcher(fake: FakeSlurm) -> SlurmLauncher:
    return SlurmLauncher(progress=False, poll_s=0, scheduler=fake)


def submit(fake: FakeSlurm, out: Path, specs: list[RunSpec]) -> Submission:
    save_sweep(out, specs, launcher="slurm")
    return launcher(fake).submit(specs, out)


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

    # a new attempt (another job id) and a run in this process may write
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


def test_the_parser_offers_every_launcher_without_loading_torch():
    """``--launcher`` choices come from LAUNCHERS, and building the parser (``bench --help``)
    still loads no torch: the launchers import their job only to submit it."""
    code = ("import sys; from scaleqbench.bench.cli import main as cli; "
            "run = cli.build_parser()._subparsers._group_actions[0].choices['run']; "
            "[a] = [a for a in run._actions if a.dest == 'launcher']; "
            "print(','.join(a.choices), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == [",".join(LAUNCHERS), "False"]


def test_sweep_json_names_its_launchers(tmp_path):
    a, b = spec(0), spec(1)
    save_sweep(tmp_path, [a], launcher="local")
    save_sweep(tmp_path, [b], launcher="slurm")
    save_sweep(tmp_path, [a], launcher="local")
    assert sweep_launchers(tmp_path) == ["local", "slurm"]
    assert [s.run_id for s in load_sweep(tmp_path)] == [a.run_id, b.run_id]


def test_a_sweep_from_before_the_launcher_list_asks_every_launcher(tmp_path, monkeypatch):
    fake, a = FakeSlurm(), spec(0)
    monkeypatch.setitem(LAUNCHERS, "slurm", partial(SlurmLauncher, scheduler=fake))
    launcher(fake).submit([a], tmp_path)  # launched by a bench that did not name launchers
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": [a.to_json()]}))
    fake.jobs["100_0"] = "RUNNING"
    save_sweep(tmp_path, [spec(1)], launcher="local")
    assert sweep_launchers(tmp_path) is None  # who launched run a is unknown: ask them all
    assert [r["state"] for r in sweep_status(tmp_path)] == ["running", "not submitted"]


@pytest.mark.parametrize("name, options, message", [
    ("local", {"partition": "gpu", "detach": True},
     "--partition, --detach only apply to --launcher slurm"),
    ("local", {"cpus_per_job": 0}, "--cpus-per-job only apply to --launcher slurm"),
])
def test_options_of_another_launcher_are_refused(name, options, message):
    with pytest.raises(BadArgumentError, match=message):
        make_launcher(name, options)


def test_unknown_launcher_name():
    with pytest.raises(UnknownNameError, match="known: local, slurm"):
        make_launcher("pbs", {})


def test_local_launcher_takes_no_option():
    assert make_launcher("local", {"partition": None, "detach": False, "sbatch_extra": []},
                         progress=False) == LocalLauncher(progress=False)


@dataclass(frozen=True)
class ThirdLauncher:
    """A backend the registry does not ship: one class is all ``bench run`` needs."""

    name = "third"
    accepts = frozenset({"detach"})
    interrupt_hint = "the third backend keeps its jobs"

    @classmethod
    def from_options(cls, options, progress):
        return cls()

    def submit(self, specs, out_dir, command=None):
        THIRD_CALLS.append(("submit", [s.run_id for s in specs], command))
        return Submission(tuple(specs), {s.run_id: f"t{i}" for i, s in enumerate(specs)},
                          f"handed {len(specs)} run(s) to the third backend")

    def follow(self, submission, out_dir):
        raise AssertionError("--detach does not follow")

    def states(self, out_dir, specs):  # it knows the runs it was handed
        handed = {rid for call in THIRD_CALLS for rid in call[1]}
        return {s.run_id: RunState(job="t", state="queued", detail="waiting")
                for s in specs if s.run_id in handed}

    def settle(self, out_dir, specs):
        return 0


THIRD_CALLS: list = []


def test_a_third_backend_is_one_class(tmp_path, cache_dir, monkeypatch, capsys):
    monkeypatch.setitem(LAUNCHERS, "third", ThirdLauncher)
    THIRD_CALLS.clear()
    out = tmp_path / "exp"
    argv = ["run", "--methods", "cnn", "--seeds", "0,1", "--out", str(out), "--epochs", "1",
            "--limit-train", "40", "--limit-eval", "20", "--quiet", "--detach",
            "--launcher", "third"]  # --launcher offers every registered launcher
    args = cli.build_parser().parse_args(argv)
    args.argv = argv
    assert cmd_run(args) == 0
    assert "handed 2 run(s) to the third backend" in capsys.readouterr().out
    assert THIRD_CALLS[0][0] == "submit" and len(THIRD_CALLS[0][1]) == 2
    assert sweep_launchers(out) == ["third"]
    assert cmd_run(args) == 0  # its runs are still queued there: none resubmitted
    assert "2 still queued or running, 0 to run" in capsys.readouterr().out
    assert cmd_status(argparse.Namespace(experiment=str(out))) == 0
    assert "2 queued" in capsys.readouterr().out


# --- GPUs and several runs per task ----------------------------------------------------------

def slurm_launcher(fake: FakeSlurm, **config) -> SlurmLauncher:
    return SlurmLauncher(SlurmConfig(**config), progress=False, poll_s=0, scheduler=fake)


@pytest.mark.parametrize("config, device", [({}, "cpu"), ({"gpus_per_job": 1}, "cuda"),
                                            ({"gres": "gpu:a100:1"}, "cuda")])
def test_device_auto_is_decided_by_the_gpus_a_task_gets(tmp_path, config, device):
    """A task without GPUs computes on the CPU even on a node whose GPUs it can see (one
    that does not hide the GPUs of other jobs); with GPUs, auto is CUDA."""
    fake = FakeSlurm()
    sub = slurm_launcher(fake, **config).submit([spec(0), RunSpec("cnn", device="cpu")],
                                                tmp_path)
    jobs = fake.submitted[0][1]
    assert [RunSpec.from_json(j.spec).device for j in jobs] == [device, "cpu"]
    assert set(sub.jobs) == {spec(0).run_id, RunSpec("cnn").run_id}  # the same runs


def test_runs_per_job_puts_k_runs_in_each_task(tmp_path):
    fake, specs = FakeSlurm(), [spec(i) for i in range(5)]
    sub = slurm_launcher(fake, runs_per_job=2).submit(specs, tmp_path)
    tasks = fake.submitted[0][1]
    assert [type(t) for t in tasks] == [SweepTask] * 3
    assert [[RunSpec.from_json(d).seed for d in t.specs] for t in tasks] == [[0, 1], [2, 3], [4]]
    assert sub.summary == "submitted 3 task(s) (5 runs) as Slurm job 100"
    assert [sub.jobs[s.run_id] for s in specs] == ["100_0", "100_0", "100_1", "100_1", "100_2"]
    assert {rid: e["job_id"] for rid, e in load_jobs(tmp_path).items()} == dict(sub.jobs)


def test_a_task_of_runs_that_ends_without_records_settles_each(tmp_path):
    fake, specs = FakeSlurm(), [spec(i) for i in range(3)]
    save_sweep(tmp_path, specs, launcher="slurm")
    slurm = slurm_launcher(fake, runs_per_job=3)
    sub = slurm.submit(specs, tmp_path)
    fake.before_poll = lambda poll: poll == 1 and (
        job_writes(tmp_path, specs[0], "100_0"), fake.jobs.update({"100_0": "TIMEOUT"}))
    assert slurm.follow(sub, tmp_path) == {specs[0].run_id: "done",
                                           specs[1].run_id: "timed out",
                                           specs[2].run_id: "timed out"}
    assert RunStore(tmp_path).current(specs[1].run_id).job_id == "100_0"


def _task_context(tmp_path: Path, job_id: str = "100_0", restarts: int = 0) -> dict:
    log = tmp_path / "slurm" / job_id / f"{job_id}_0_log.out"
    return {"job_id": job_id, "log": str(log), "log_err": str(log), "hostname": "node1",
            "slurm_restarts": restarts}


def test_a_task_runs_its_runs_in_processes_each_with_its_own_record(tmp_path, cache_dir,
                                                                    monkeypatch):
    """``--runs-per-job 2``: one task, two processes, two records written with the task's
    job id (so the follower settles both from them), two logs. A run whose process dies
    without its record (killed by the kernel, a crash in native code) gets a failed record
    saying how; the other run goes on."""
    fake = FakeSlurm()
    specs = [RunSpec("cnn", seed=i, epochs=1, limit_train=40, limit_eval=20, eq_images=4,
                     experiment="exp", cache_dir=str(cache_dir)) for i in (0, 1)]
    save_sweep(tmp_path, specs, launcher="slurm")
    slurm = slurm_launcher(fake, runs_per_job=2)
    sub = slurm.submit(specs, tmp_path)
    crash = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    starts = iter([crash, processes.worker_argv()])
    monkeypatch.setattr(processes, "worker_argv", lambda: next(starts))
    monkeypatch.setattr(task_module, "job_context", lambda: _task_context(tmp_path))
    assert [s["status"] for s in fake.submitted[0][1][0]()] == ["failed", "ok"]
    fake.jobs["100_0"] = "COMPLETED"
    assert slurm.follow(sub, tmp_path) == {specs[0].run_id: "failed", specs[1].run_id: "done"}
    dead, done = (RunStore(tmp_path).current(s.run_id) for s in specs)
    assert dead.job_id == done.job_id == "100_0" and not dead.settled_by
    assert "the run's process was killed by SIGKILL before writing its record" in dead.error
    assert done.device_kind == "cpu" and done.spec.device == "cpu"  # auto, decided at submission
    assert dead.log != done.log and Path(done.log).exists()


def test_a_requeued_task_resumes_all_its_runs(tmp_path, cache_dir, monkeypatch):
    """Slurm's requeue signal makes submitit call the task's checkpoint(): the runs still going
    stop without records (their per-epoch checkpoints stay) and the whole task is requeued;
    its next attempt resumes every run. The runs are paused after epoch 1 (bench/run/pause.py)
    when the signal comes, so the test does not race them."""
    pause = tmp_path / "pause"
    monkeypatch.setenv(PAUSE_DIR, str(pause))
    monkeypatch.setenv(PAUSE_AFTER_EPOCH, "1")
    specs = [RunSpec("cnn", seed=i, epochs=2, limit_train=40, limit_eval=20, eq_images=4,
                     experiment="exp", cache_dir=str(cache_dir), device="cpu") for i in (0, 1)]
    monkeypatch.setattr(task_module, "job_context", lambda: _task_context(tmp_path))
    task = SweepTask(specs, tmp_path, runs_per_job=2)
    first = threading.Thread(target=task)
    first.start()
    deadline = time.monotonic() + 180
    while len(list(pause.glob("*.paused"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(list(pause.glob("*.paused"))) == 2, "the runs did not reach their pause"
    requeued = task.checkpoint()  # what submitit does on the signal
    first.join(60)
    assert not first.is_alive()
    assert all(RunStore(tmp_path).current(s.run_id) is None for s in specs)  # not over
    assert all(last_checkpoint_path(tmp_path, s.run_id).exists() for s in specs)
    monkeypatch.setattr(task_module, "job_context", lambda: _task_context(tmp_path, restarts=1))
    assert [s["status"] for s in requeued.function(*requeued.args)] == ["ok", "ok"]
    for s in specs:
        rec = RunStore(tmp_path).current(s.run_id)
        assert rec.resumed_from_epoch == 1 and rec.slurm_restarts == 1
        assert [h["epoch"] for h in rec.history] == [1, 2]


def test_local_gpu_runs_run_in_a_fresh_process_each(tmp_path, cache_dir, monkeypatch):
    """A run that kills its process (as a CUDA error that poisons a context would make every
    later run of the process fail) fails alone; the sweep goes on to the next run."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert LocalLauncher()._isolated(RunSpec("cnn"))  # auto: CUDA here, so isolated
    assert not LocalLauncher()._isolated(RunSpec("cnn", device="cpu"))
    specs = [RunSpec("cnn", seed=i, epochs=1, limit_train=40, limit_eval=20, eq_images=4,
                     experiment="exp", cache_dir=str(cache_dir), device="cpu") for i in (0, 1)]
    crash = [sys.executable, "-c", "import os; os.abort()"]
    starts = iter([crash, processes.worker_argv()])
    monkeypatch.setattr(processes, "worker_argv", lambda: next(starts))
    local = LocalLauncher(progress=False, isolate=True)
    final = local.follow(local.submit(specs, tmp_path, "bench run ..."), tmp_path)
    assert final == {specs[0].run_id: "failed", specs[1].run_id: "done"}
    dead = RunStore(tmp_path).current(specs[0].run_id)
    assert "was killed by SIGABRT" in dead.error and dead.command == "bench run ..."
