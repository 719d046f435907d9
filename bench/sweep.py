"""What an experiment folder says about its sweep: the expected runs, their state, collation.

``sweep.json`` lists every RunSpec ever launched into the folder (merged by run
id), so ``bench status`` knows which runs are missing, and ``bench collect``
can settle runs whose Slurm jobs ended without a record.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from scalebench.bench.errors import CorruptRecordError, NoRecordsError
from scalebench.bench.record import RunRecord
from scalebench.bench.records import atomic_write_text, load_record, record_path
from scalebench.bench.spec import RunSpec

__all__ = ["collect_unfinished", "load_sweep", "run_states", "save_sweep"]

log = logging.getLogger(__name__)


def sweep_file(out_dir: Path) -> Path:
    return Path(out_dir) / "sweep.json"


def load_sweep(out_dir: Path) -> list[RunSpec]:
    try:
        data = json.loads(sweep_file(out_dir).read_text())
    except FileNotFoundError:
        raise NoRecordsError(f"{out_dir} holds no sweep (no sweep.json); start one with "
                             f"bench run --out {out_dir}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise NoRecordsError(f"cannot read {sweep_file(out_dir)}: {exc}") from None
    return [RunSpec.from_dict(d) for d in data["runs"]]


def save_sweep(out_dir: Path, specs: list[RunSpec]) -> None:
    try:
        known = {s.run_id: s for s in load_sweep(out_dir)}
    except NoRecordsError:
        known = {}
    known.update({s.run_id: s for s in specs})
    atomic_write_text(sweep_file(out_dir), json.dumps(
        {"runs": [s.to_dict() for s in known.values()]}, indent=2) + "\n")


def run_states(out_dir: Path, query_slurm: bool = True) -> list[dict]:
    """One row per run of the sweep: method, seed, state, job id, detail."""
    from scalebench.bench.slurm import classify, job_log_tail, load_jobs, slurm_job, SlurmLauncher

    specs = load_sweep(out_dir)
    jobs = load_jobs(out_dir)
    live = {}
    pending_ids = {s.run_id: jobs[s.run_id]["job_id"] for s in specs if s.run_id in jobs}
    if query_slurm and pending_ids:
        try:
            live = SlurmLauncher.poll({rid: slurm_job(out_dir, jid)
                                       for rid, jid in pending_ids.items()})
        except Exception:  # no sacct here: say unknown rather than guess
            live = {}
    rows = []
    for spec in specs:
        corrupt: CorruptRecordError | None = None
        try:
            rec = load_record(record_path(out_dir, spec.run_id))
        except CorruptRecordError as exc:
            rec, corrupt = None, exc
        job_id = jobs.get(spec.run_id, {}).get("job_id", "")
        row = {"method": spec.label, "seed": spec.seed, "run_id": spec.run_id, "job": job_id}
        slurm_state = live.get(spec.run_id, "")
        kind = classify(slurm_state) if slurm_state else None
        if kind in ("queued", "running") and not (rec and rec.job_id == job_id and rec.ok):
            row["state"], row["detail"] = kind, slurm_state
            if rec and not rec.ok:
                row["detail"] += " (retry of a failed run)"
        elif corrupt is not None:
            row["state"] = "corrupt record"
            row["detail"] = (f"{corrupt}; `bench run` moves it aside and recomputes the run")
        elif rec is not None and rec.ok:
            row["state"] = "done"
            row["detail"] = f"test acc {100 * (rec.test_acc or 0):.2f} %"
        elif rec is not None:
            state = rec.slurm_state
            row["state"] = classify(state) if state else "failed"
            if row["state"] == "done":
                row["state"] = "failed"
            err = (rec.error or "").strip().splitlines()
            tail = job_log_tail(out_dir, job_id) if job_id else ""
            row["detail"] = (err[-1] if err else "") + (f" | log: {tail}" if tail and
                                                        tail not in (err[-1:] or [""])[0] else "")
            if rec.log:
                row["detail"] += f" ({rec.log})"
        elif kind:
            row["state"], row["detail"] = kind, slurm_state
        else:
            row["state"] = "not submitted" if not job_id else "unknown"
            row["detail"] = ""
        rows.append(row)
    return rows


def collect_unfinished(out_dir: Path) -> int:
    """Write failed records for runs whose Slurm jobs ended without one; returns how many."""
    from scalebench.bench.slurm import classify, load_jobs, record_unfinished, slurm_job, SlurmLauncher

    jobs = load_jobs(out_dir)
    specs = {s.run_id: s for s in load_sweep(out_dir)}
    todo = {}
    for rid, entry in jobs.items():
        rec = _readable_record(out_dir, rid)
        if rid in specs and not (rec and rec.job_id == entry["job_id"]):
            todo[rid] = slurm_job(out_dir, entry["job_id"])
    if not todo:
        return 0
    states = SlurmLauncher.poll(todo)
    n = 0
    for rid, state in states.items():
        kind = classify(state)
        if kind not in ("queued", "running", "unknown"):
            rec = _readable_record(out_dir, rid)
            if kind == "done" and rec is not None:
                continue  # finished; its record may predate job ids (local)
            record_unfinished(specs[rid], out_dir, state if kind != "done" else
                              "COMPLETED without writing a record", todo[rid].job_id)
            n += 1
    return n


def _readable_record(out_dir: Path, run_id: str) -> RunRecord | None:
    """The run's record, or None; a damaged one is named in a warning and treated as absent
    (writing the run's failed record then moves it aside)."""
    try:
        return load_record(record_path(out_dir, run_id))
    except CorruptRecordError as exc:
        log.warning("%s; treated as missing", exc)
        return None
