"""What an experiment folder says about its sweep: the expected runs, who launched them, their state.

``sweep.json`` lists every RunSpec ever launched into the folder (merged by run
id), so ``bench status`` knows which runs are missing, and the names of the
launchers that launched them, so ``bench status`` and ``bench collect`` know
whom to ask about jobs still out there. :func:`run_states` merges the records
with what those launchers report, and shows a run that a process computes here without a
job (a local ``bench run``: it holds the run's computing lock) as running, with that
process's id; it knows no backend. :func:`plan_launch` decides,
under the experiment lock, which runs ``bench run`` launches, from one read of each
run's record. A run without a record under its own id may have one under another: a
record of the same protocol, label and seed made with another config or recipe is
stale, and is moved aside (:func:`bench.store.identity.set_aside`) before the run runs
again; one made with the same values under an earlier version's run id is re-filed
under the run's id (its original file kept in ``runs/migrated/``), and counts as
done. ``sweep.json`` keeps one spec per such slot, the latest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from scaleqbench.bench.errors import BenchError, CorruptRecordError, NoRecordsError
from scaleqbench.bench.launch.api import ACTIVE, ENDED, Launcher, RunState
from scaleqbench.bench.spec import RunSpec
from scaleqbench.bench.store.atomic_io import atomic_write_bytes, atomic_write_text
from scaleqbench.bench.store.identity import replace_stale, set_aside, set_aside_files
from scaleqbench.bench.store.locks import computing_holder
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore

__all__ = ["LaunchPlan", "load_sweep", "log_tail", "plan_launch", "run_states", "save_sweep",
           "settle_sweep", "sweep_launchers", "sweep_status", "undone_if_refused"]

#: what one read of each run's record found, by run id: the record, why its file is not a
#: readable record, or None (no record)
Found = Mapping[str, RunRecord | CorruptRecordError | None]

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
    return [RunSpec.from_json(d) for d in _read(out_dir)["runs"]]


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
    # one spec per slot: a run whose config or recipe changed replaces its stale spec
    known = {s.slot: s for s in map(RunSpec.from_json, data["runs"])}
    known.update({s.slot: s for s in specs})
    out: dict = {"runs": [s.to_json() for s in known.values()]}
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


def read_runs(out_dir: Path, specs: Iterable[RunSpec]) -> Found:
    """One read of each run's record (:meth:`RunStore.peek`)."""
    store = RunStore(out_dir)
    return {s.run_id: store.peek(s.run_id) for s in specs}


def run_states(out_dir: Path, live: Mapping[str, RunState],
               specs: Iterable[RunSpec] | None = None, found: Found | None = None) -> list[dict]:
    """One row per run (method, seed, run_id, job, state, detail), from the records (``found``:
    read here when not given) and what the launchers report (``live``). A record that the
    run's latest job wrote settles the run, whatever the backend still says; a job still
    queued or running outranks an older record."""
    specs = load_sweep(out_dir) if specs is None else list(specs)
    found = read_runs(out_dir, specs) if found is None else found
    rows = []
    for spec in specs:
        st = live.get(spec.run_id, RunState())
        row = {"method": spec.label, "seed": spec.seed, "run_id": spec.run_id, "job": st.job}
        row.update(_state(found.get(spec.run_id), st))
        rows.append(row)
    return rows


def _state(stored: RunRecord | CorruptRecordError | None, st: RunState) -> dict[str, str]:
    """A run's ``state`` and ``detail``, from its record (or why it is unreadable) and what
    its launcher says of its latest job."""
    record = stored if isinstance(stored, RunRecord) else None
    settled = record is not None and bool(st.job) and record.job_id == st.job
    if st.state in ACTIVE and not settled:
        retry = record is not None and not record.ok
        return {"state": st.state, "detail": st.detail + (" (retry of a failed run)"
                                                          if retry else "")}
    if isinstance(stored, CorruptRecordError):
        return {"state": "corrupt record",
                "detail": f"{stored}; `bench run` moves it aside and recomputes the run"}
    if record is not None and record.ok:
        return {"state": "done", "detail": f"test acc {100 * (record.test_acc or 0):.2f} %"}
    if record is not None:
        err = record.last_error_line
        tail = log_tail(st.logs) if record.job_id and record.job_id == st.job else ""
        detail = err + (f" | log: {tail}" if tail and tail not in err else "")
        return {"state": record.outcome,
                "detail": detail + (f" ({record.log})" if record.log else "")}
    if st.state in ENDED:  # the job ended without a record: say so until it is settled
        return {"state": "failed" if st.state == "done" else st.state,
                "detail": f"{st.detail}, no record yet (bench collect records it)"}
    if st.state:
        return {"state": st.state, "detail": st.detail}
    return {"state": "not submitted" if not st.job else "unknown", "detail": ""}


@dataclass(frozen=True)
class LaunchPlan:
    """What ``bench run`` does with the runs of a sweep."""

    todo: list[RunSpec]  # to launch now
    done: int  # kept: an ``ok`` record (or a failed one, unless failed runs are retried)
    active: int  # left alone: a job of an earlier launch is still queued or running
    # one line per record moved aside (stale, or --rerun) or re-filed, naming where it went
    notes: tuple[str, ...] = ()


def plan_launch(out_dir: Path, specs: list[RunSpec], launcher: str,
                retry_failed: bool = True, rerun: bool = False) -> LaunchPlan:
    """Which of ``specs`` to launch (by the ``launcher`` named), from one read of each record
    file, under the experiment lock: those without an ``ok`` record (nor a failed one,
    unless ``retry_failed``; every one with ``rerun``) whose job of an earlier launch
    (``--detach``) is not still out there. A stale record is moved aside and a record of an
    earlier version re-filed (see the module docstring), as is the record of a run that
    ``rerun`` recomputes. The damaged record of a run to launch is moved aside (never
    deleted), said in a warning; a record of a newer schema stops the launch
    (:class:`RecordSchemaError`)."""
    store = RunStore(out_dir)
    found = dict(read_runs(out_dir, specs))
    notes = replace_stale(store, specs, found)
    pending = []
    for spec in specs:
        rec = found[spec.run_id]
        if not rerun and isinstance(rec, RunRecord) and (rec.ok or not retry_failed):
            log.info("skip %s seed %d: %s record %s exists", spec.label, spec.seed,
                     rec.status, spec.run_id)
        else:
            pending.append(spec)
    live = _live_states(out_dir, pending, adding=launcher)
    active = {r["run_id"] for r in run_states(out_dir, live, pending, found)
              if r["state"] in ACTIVE}
    todo = [s for s in pending if s.run_id not in active]
    for spec in todo:
        rec = found[spec.run_id]
        if isinstance(rec, CorruptRecordError):
            store.set_aside(rec, "the run will be recomputed")
        elif rerun and isinstance(rec, RunRecord) and rec.path is not None:
            moved = set_aside(rec.path, spec.run_id)
            notes.append(f"{spec.label} seed {spec.seed}: --rerun: moved its record to "
                         f"{moved.relative_to(out_dir)}; running it again")
        elif rerun:  # no record: a per-epoch state left by an interrupted run is not resumed
            set_aside_files(out_dir, spec.run_id)
    return LaunchPlan(todo, done=len(specs) - len(pending), active=len(active),
                      notes=tuple(notes))


def _launchers_of(out_dir: Path, adding: str | None = None) -> list[Launcher]:
    """A launcher (with defaults) for each that launched runs into the folder, and ``adding``
    (about to launch some); every registered one for a sweep that predates that list (each
    says nothing of runs it did not launch)."""
    try:
        names = sweep_launchers(out_dir)
    except NoRecordsError:  # no sweep file yet, or none that can be read: none launched here
        if adding is None:
            raise
        names = []
    if names is not None and adding and adding not in names:
        names = [*names, adding]
    from scaleqbench.bench.launch.registry import LAUNCHERS, launcher_class

    return [launcher_class(n)() for n in (list(LAUNCHERS) if names is None else names)]


def _live_states(out_dir: Path, specs: list[RunSpec], adding: str | None = None
                 ) -> dict[str, RunState]:
    """What the launchers of the sweep (and ``adding``) say of the runs' latest jobs; a run
    that a process computes without a job (a local run) is running, whatever they say."""
    live: dict[str, RunState] = {}
    for launcher in _launchers_of(out_dir, adding):
        live.update(launcher.states(out_dir, specs))
    for spec in specs:
        if live.get(spec.run_id, RunState()).state not in ACTIVE:
            held = computing_holder(out_dir, spec.run_id)
            if held is not None:
                live[spec.run_id] = _running_locally(*held)
    return live


def _running_locally(pid: str, host: str) -> RunState:
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return RunState(state="running", detail=f"local, pid {pid}{where}")


def sweep_status(out_dir: Path, specs: Iterable[RunSpec] | None = None) -> list[dict]:
    """``bench status``: one row per run, from the records and every launcher of the sweep."""
    specs = load_sweep(out_dir) if specs is None else list(specs)
    return run_states(out_dir, _live_states(out_dir, specs), specs)


def settle_sweep(out_dir: Path, specs: Iterable[RunSpec] | None = None) -> int:
    """``bench collect``: each launcher of the sweep records the runs whose jobs ended without
    a record; returns how many."""
    specs = load_sweep(out_dir) if specs is None else list(specs)
    return sum(launcher.settle(out_dir, specs) for launcher in _launchers_of(out_dir))
