"""A task that can never start on the real cluster (``-m slurm``; the node has 2 CPUs):
``--cpus-per-job 64`` keeps it PENDING for ever. The foreground ``bench run`` polls
Slurm (sacct, then squeue for the reason) until the reason appears, cancels the task, says
so in one line, and exits 1; nothing here waits on a timer, only the test's safety limit
bounds it.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from scaleqbench.bench.store.ownership import load_jobs
from scaleqbench.bench.store.run_store import RunStore

# slurm_cluster (module-scoped, autouse): a fixture, found by pytest under this name
from slurm_support import TINY, bench, slurm_cluster  # noqa: F401

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(600)]


def test_a_task_asking_for_more_cpus_than_a_node_has_is_cancelled_with_one_line(
        tmp_path, cache_dir, capsys, caplog):
    cpus = 64
    assert cpus > (os.cpu_count() or 1)
    out = tmp_path / "exp"
    code = bench("run", "--methods", "cnn", *TINY, "--cache-dir", str(cache_dir), "--out", str(out),
                 "--launcher", "slurm", "--time", "10", "--cpus-per-job", str(cpus))
    text = capsys.readouterr()
    if code == 2 and "Slurm did not take the job array" in text.err:
        pytest.skip(f"this Slurm refuses the job at submission: {text.err.strip()}")
    assert code == 1, text.err
    (run_id, entry), = load_jobs(out).items()
    said = [r.getMessage() for r in caplog.records if "can never start" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"Slurm job {entry['job_id']} can never "
                                                 "start as submitted: pending for ")
    assert "bench cancelled it" in said[0]
    rec = RunStore(out).current(run_id)
    assert rec.end_state == "cancelled" and rec.backend_state.startswith("PENDING (")
    queue = subprocess.run(["squeue", "-h", "-j", entry["job_id"].split("_")[0]],
                           capture_output=True, text=True)
    assert entry["job_id"] not in queue.stdout  # cancelled: nothing left waiting
