"""``bench run/status/collect --launcher slurm`` against fake Slurm commands on PATH.

``sbatch``, ``srun``, ``scontrol`` and ``sacct`` are small shell scripts that
answer from files in a folder the test controls, so the command-line glue
(submitit's submission, ``scontrol ping``, ``sacct`` parsing) and the CLI's
one-line errors are checked without a cluster. tests/test_slurm.py (``-m
slurm``) runs the same commands against a real one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.launch.api import SchedulerUnavailable
from scaleqbench.bench.store.run_store import RunStore
from scaleqbench.bench.store.ownership import load_jobs
from scaleqbench.bench.launch.slurm_scheduler import SubmititScheduler

TINY = ["--methods", "cnn", "--limit-train", "40", "--limit-eval", "20", "--epochs", "1",
        "--quiet", "--no-report"]

SCRIPTS = {
    # refuses what real sbatch refuses, and everything while the controller is down
    "sbatch": r"""
d="$FAKE_SLURM"; echo "$*" >> "$d/sbatch.calls"; cp "$1" "$d/last.sbatch"
if [ -e "$d/down" ]; then
  echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)" >&2; exit 1
fi
if grep -qE -- '--cpus-per-task=0$' "$1"; then
  echo 'sbatch: error: Invalid numeric value "0" for --cpus-per-task.' >&2; exit 1
fi
if grep -qE -- '--array=.*%0$' "$1"; then
  echo 'sbatch: error: Invalid job array specification' >&2; exit 1
fi
if grep -qE -- '--mem=-' "$1"; then echo 'sbatch: error: Invalid --mem specification' >&2; exit 1; fi
echo "Submitted batch job 4242"
""",
    "srun": "exit 0\n",
    "scontrol": r"""
if [ -e "$FAKE_SLURM/down" ]; then echo "Slurmctld(primary) at fakehost is DOWN"; exit 1; fi
echo "Slurmctld(primary) at fakehost is UP"
""",
    # the controller's queue: one "id|state|reason" line per job the test lists
    "squeue": r"""
if [ -e "$FAKE_SLURM/down" ]; then echo "squeue: error: Unable to contact slurm controller" >&2; exit 1; fi
[ -e "$FAKE_SLURM/squeue" ] && cat "$FAKE_SLURM/squeue"
exit 0
""",
    "scancel": 'echo "$*" >> "$FAKE_SLURM/scancel.calls"\n',
    # what the accounting database says (it answers while the controller is down)
    "sacct": r"""
echo "JobID|State"
[ -e "$FAKE_SLURM/sacct" ] && cat "$FAKE_SLURM/sacct"
exit 0
""",
}


@pytest.fixture()
def slurm(tmp_path, monkeypatch) -> Path:
    """A fake cluster: its state folder (touch ``down`` to stop the controller)."""
    state, bindir = tmp_path / "fake-slurm", tmp_path / "fake-bin"
    state.mkdir()
    bindir.mkdir()
    for name, body in SCRIPTS.items():
        path = bindir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM", str(state))
    return state


def bench(*argv: str) -> int:
    return cli.main(list(argv))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("bench: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


def test_bench_run_while_slurm_is_down_is_one_line(slurm, tmp_path, cache_dir, capsys):
    (slurm / "down").touch()
    code = bench("run", *TINY, "--out", str(tmp_path / "exp"), "--launcher", "slurm")
    assert code != 0
    err = one_line_error(capsys)
    assert "Unable to contact slurm controller" in err and "--launcher local" in err


@pytest.mark.parametrize("flags, message", [
    (["--cpus-per-job", "0"], "cpus_per_job (--cpus-per-job) must be >= 1"),
    (["--array-parallelism", "0", "--seeds", "0,1"],
     "array_parallelism (--array-parallelism) must be >= 1"),
    (["--mem", "-5"], "mem (--mem) must be a size such as 32G"),
])
def test_non_positive_resources_are_one_line(slurm, tmp_path, cache_dir, capsys, flags,
                                             message):
    code = bench("run", *TINY, "--out", str(tmp_path / "exp"), "--launcher", "slurm", *flags)
    assert code != 0
    assert message in one_line_error(capsys)
    assert not (slurm / "sbatch.calls").exists()  # refused before anything was submitted


def test_detach_status_collect_on_a_fake_cluster(slurm, tmp_path, cache_dir, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", str(out), "--launcher", "slurm", "--detach") == 0
    assert "submitted 1 task(s) as Slurm job 4242" in capsys.readouterr().out
    assert [e["job_id"] for e in load_jobs(out).values()] == ["4242"]

    (slurm / "sacct").write_text("4242|RUNNING\n4242.batch|RUNNING\n")
    assert bench("status", str(out)) == 0
    assert "1 running" in capsys.readouterr().out

    (slurm / "down").touch()  # sacct still says RUNNING: the frozen state of a dead controller
    assert bench("status", str(out)) == 0
    text = capsys.readouterr().out
    assert "1 unknown" in text and "does not answer" in text
    assert bench("collect", str(out)) != 0  # nothing to collate: no record, none settled
    assert "no run records" in one_line_error(capsys)
    assert RunStore(out).scan() == ([], [])

    (slurm / "down").unlink()
    (slurm / "sacct").write_text("4242|CANCELLED by 0\n")
    assert bench("collect", str(out)) == 0
    assert "1 run(s) ended without a record; recorded as failed" in capsys.readouterr().out
    [rec], _ = RunStore(out).scan()
    assert rec.status == "failed" and rec.end_state == "cancelled"
    assert rec.job_id == "4242" and rec.settled_by == "slurm" and rec.backend_state == "CANCELLED by 0"
    assert bench("status", str(out)) == 0
    assert "1 cancelled" in capsys.readouterr().out


def test_the_scheduler_reads_sacct_with_array_ranges(slurm):
    (slurm / "sacct").write_text("4242_0|COMPLETED\n4242_0.batch|COMPLETED\n"
                                 "4242_[1-2%1]|PENDING\n4243|CANCELLED by 0\n")
    assert SubmititScheduler().states(["4242_0", "4242_1", "4242_2", "4243", "4244"]) == {
        "4242_0": "COMPLETED", "4242_1": "PENDING", "4242_2": "PENDING",
        "4243": "CANCELLED by 0", "4244": "UNKNOWN"}


def test_a_silent_controller_makes_states_unavailable(slurm):
    (slurm / "sacct").write_text("4242|RUNNING\n")
    (slurm / "down").touch()
    with pytest.raises(SchedulerUnavailable, match="controller does not answer.*is DOWN"):
        SubmititScheduler().states(["4242"])


def test_no_slurm_commands_make_states_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SchedulerUnavailable, match="scontrol is not installed"):
        SubmititScheduler().states(["4242"])


def test_collect_while_every_task_is_pending_says_so(slurm, tmp_path, cache_dir, capsys):
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--out", str(out), "--launcher", "slurm", "--detach") == 0
    (slurm / "sacct").write_text("4242|PENDING\n")
    capsys.readouterr()
    assert bench("collect", str(out)) == 0
    said = capsys.readouterr()
    assert "still queued or running; nothing to collate yet" in said.out and not said.err
    assert not (out / "leaderboard.csv").exists()


# --- GPUs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--device", "cuda"], "--device cuda needs a GPU, but each Slurm task asks for none"),
    (["--device", "cuda:0", "--gpus-per-job", "0"], "needs a GPU"),
    (["--device", "cuda:1", "--gpus-per-job", "1"], "sees its GPU as cuda:0"),
    (["--device", "cpu", "--gpus-per-job", "1"], "would leave them idle"),
    (["--gpus-per-job", "2"], "raise --runs-per-job to at least 2"),
    (["--gpus-per-job", "1", "--gres", "gpu:2", "--runs-per-job", "2"],
     "ask for different GPUs"),
    (["--device", "mps"], "MPS has no float64"),
    (["--device", "auto", "--precision", "tf32"], "--precision tf32 is a CUDA mode"),
])
def test_a_device_the_tasks_cannot_have_is_one_line_before_anything(slurm, tmp_path, cache_dir,
                                                                    capsys, flags, message):
    out = tmp_path / "exp"
    code = bench("run", *TINY, "--out", str(out), "--launcher", "slurm", *flags)
    assert code != 0
    assert message in one_line_error(capsys)
    assert not out.exists() and not (slurm / "sbatch.calls").exists()


def test_gpu_tasks_by_gres_with_several_runs_each(slurm, tmp_path, cache_dir, capsys):
    """``--gres`` for clusters that refuse ``--gpus-per-node``; ``--runs-per-job 2`` puts two
    runs in one task; the job step gets the task's CPUs (submitit's bare srun would not)."""
    out = tmp_path / "exp"
    assert bench("run", *TINY, "--seeds", "0-2", "--out", str(out), "--launcher", "slurm",
                 "--gres", "gpu:1", "--runs-per-job", "2", "--cpus-per-job", "4",
                 "--detach") == 0
    assert "submitted 2 task(s) (3 runs) as Slurm job 4242" in capsys.readouterr().out
    script = (slurm / "last.sbatch").read_text()
    assert "#SBATCH --gres=gpu:1" in script and "--gpus-per-node" not in script
    assert "export SRUN_CPUS_PER_TASK=4" in script.split("srun")[0]
    assert sorted(e["job_id"] for e in load_jobs(out).values()) == ["4242_0", "4242_0", "4242_1"]
