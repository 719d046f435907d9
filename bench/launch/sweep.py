"""What an experiment folder says about its sweep: the expected runs, who launched them, their state.

``sweep.json`` lists every RunSpec ever launched into the folder (merged by run
id), so ``bench status`` knows which runs are missing, and the names of the
launchers that launched them, so ``bench status`` and ``bench collect`` know
whom to ask about jobs still out there. :func:`run_states` merges the records
with what those launchers report; it knows no backend.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from scaleqbench.bench.errors import BenchError, CorruptRecordError, NoRecordsError
from scaleqbench.bench.launch.api import ACTIVE, ENDED, Launcher, RunState
from scaleqbench.bench.store.atomic_io import atomic_write_bytes
from scaleqbench.bench.store.run_store import (
    atomic_write_text,
    load_record,
    record_path,
    resume_record,
)
from scaleqbench.bench.spec import RunSpec

__all__ = ["load_sweep", "log_tail", "pending", "run_states", "save_sweep", "settle_sweep",
           "sweep_launchers", "sweep_status", "undone_if_refused"]

log = logging.getLogger(__name__)


def sweep_file(out_dir: Path) -> Path:
    return Path(out_dir) / "sweep.json"


def _read(out_dir: Path) -> dict:
    try:
        data = json.loads(sweep_file(out_dir).read_text())
    except FileNotFoundError:
        raise NoRecordsError(f"{out_dir} holds no sweep (no sweep.json); start one with "
                             f"bench run --out {out_dir}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise NoRecordsError(f"cannot read {sweep_file(out_dir)}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise NoRecordsError(f"{sweep_file(out_dir)} is not a sweep file (no list of runs)")
    return data


def load_sweep(out_dir: Path) -> list[RunSpec]:
    return [RunSpec.from_dict(d) for d in _read(out_dir)["runs"]]


def sweep_launchers(out_dir: Path) -> list[str] | None:
    """The launchers that launched runs into the folder, in order of first use; None when the
    sweep predates that list."""
    names = _read(out_dir).get("launchers")
    return list(names) if isinstance(names, list) else None


def save_sweep(out_dir: Path, specs: list[RunSpec], launcher: str | None = None) -> None:
    try:
        data = _read(out_dir)
    except NoRecordsError:
        data = {"runs": []}
    known = {s.run_id: s for s in map(RunSpec.from_dict, data["runs"])}
    known.update({s.run_id: s for s in specs})
    out: dict = {"runs": [s.to_dict() for s in known.values()]}
    launchers = data.get("launchers")
    if launchers is not None or not data["runs"]:  # else: who launched the earlier runs is unknown
        launchers = list(launchers or [])
        if launcher and launcher not in launchers:
            launchers.append(launcher)
        out = {"launchers": launchers, **out}
    atomic_write_text(sweep_file(out_dir), json.dumps(out, indent=2) + "\n")


@contextlib.contextmanager
def undone_if_refused(out_dir: Path, created: bool) -> Iterator[None]:
    """Around launching a sweep: when a user error (e.g. Slurm refusing the jobs) ends the
    block, ``sweep.json`` is put back as it was, and a folder this command created is
    removed, so that no phantom "not submitted" runs stay behind. Nothing had run yet."""
    path = sweep_file(out_dir)
    try:
        before: bytes | None = path.read_bytes()
    except OSError:
        before = None
    try:
        yield
    except BenchError:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        elif before is None:
            path.unlink(missing_ok=True)
        else:
            atomic_write_bytes(path, before)
        raise


def log_tail(paths: Iterable[str], lines: int = 3) -> str:
    """The last non-blank lines of the first of ``paths`` that has any, joined by `` | ``."""
    for path in paths:
        try:
            text = [ln for ln in Path(path).read_text(errors="replace").splitlines()
                    if ln.strip()]
        except OSError:
            continue
        if text:
            return " | ".join(text[-lines:])
    return ""


def run_states(out_dir: Path, live: Mapping[str, RunState],
               specs: Iterable[RunSpec] | None = None) -> list[dict]:
    """One row per run (method, seed, run_id, job, state, detail), from the records and what
    the launchers report (``live``). A record that the run's latest job wrote settles the run,
    whatever the backend still says; a job still queued or running outranks an older record."""
    rows = []
    for spec in load_sweep(out_dir) if specs is None else specs:
        corrupt: CorruptRecordError | None = None
        try:
            record = load_record(record_path(out_dir, spec.run_id))
        except CorruptRecordError as exc:
            record, corrupt = None, exc
        st = live.get(spec.run_id, RunState())
        row = {"method": spec.label, "seed": spec.seed, "run_id": spec.run_id, "job": st.job}
        settled = record is not None and bool(st.job) and record.job_id == st.job
        if st.state in ACTIVE and not settled:
            row["state"], row["detail"] = st.state, st.detail
            if record is not None and not record.ok:
                row["detail"] += " (retry of a failed run)"
        elif corrupt is not None:
            row["state"] = "corrupt record"
            row["detail"] = f"{corrupt}; `bench run` moves it aside and recomputes the run"
        elif record is not None and record.ok:
            row["state"] = "done"
            row["detail"] = f"test acc {100 * (record.test_acc or 0):.2f} %"
        elif record is not None:
            row["state"] = record.outcome
            err = record.last_error_line
            tail = log_tail(st.logs) if record.job_id and record.job_id == st.job else ""
            row["detail"] = err + (f" | log: {tail}" if tail and tail not in err else "")
            if record.log:
                row["detail"] += f" ({record.log})"
        elif st.state in ENDED:  # the job ended without a record: say so until it is settled
            row["state"] = "failed" if st.state == "done" else st.state
            row["detail"] = f"{st.detail}, no record yet (bench collect records it)"
        elif st.state:
            row["state"], row["detail"] = st.state, st.detail
        else:
            row["state"] = "not submitted" if not st.job else "unknown"
            row["detail"] = ""
        rows.append(row)
    return rows


def pending(specs: list[RunSpec], out_dir: Path, retry_failed: bool = True) -> list[RunSpec]:
    """The specs without an ``ok`` record in ``out_dir`` (and without a failed one, unless
    ``retry_failed``)."""
    todo = []
    for spec in specs:
        rec = resume_record(out_dir, spec.run_id)
        if rec is not None and (rec.ok or not retry_failed):
            log.info("skip %s seed %d: %s record %s exists", spec.label, spec.seed,
                     rec.status, spec.run_id)
            continue
        todo.append(spec)
    return todo


def _launchers_of(out_dir: Path) -> list[Launcher]:
    """A launcher (with defaults) for each that launched runs into the folder; every registered
    one for a sweep that predates that list (each says nothing of runs it did not launch)."""
    names = sweep_launchers(out_dir)
    from scaleqbench.bench.launch.registry import LAUNCHERS, launcher_class

    return [launcher_class(n)() for n in (list(LAUNCHERS) if names is None else names)]


def sweep_status(out_dir: Path, specs: Iterable[RunSpec] | None = None) -> list[dict]:
    """``bench status``: one row per run, from the records and every launcher of the sweep."""
    specs = load_sweep(out_dir) if specs is None else list(specs)
    live: dict[str, RunState] = {}
    for launcher in _launchers_of(out_dir):
        live.update(launcher.states(out_dir, specs))
    return run_states(out_dir, live, specs)


def settle_sweep(out_dir: Path, specs: Iterable[RunSpec] | None = None) -> int:
    """``bench collect``: each launcher of the sweep records the runs whose jobs ended without
    a record; returns how many."""
    specs = load_sweep(out_dir) if specs is None else list(specs)
    return sum(launcher.settle(out_dir, specs) for launcher in _launchers_of(out_dir))
