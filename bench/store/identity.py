"""A record's identity (what its run computed with), and which records are stale.

A run's result is determined by its protocol, method, seed and what it computed
with: the config values its model was built with and its training recipe
(:class:`~bench.spec.Resolved`). :func:`record_identity` reads the latter from a
record: its spec's resolution, else the values the run recorded (a spec made by
hand, or a record migrated from an earlier schema, whose config values are
inferred, ``provenance`` says so), else None (unknown: a run that failed before
it built its model).

A record is **stale** when a newer identity exists for the same row: a record of
the same protocol, method label (options and recipe overrides) made with other
values -- a later record of the same row, or what today's registry resolves the
same method to (the ``today`` argument, where the reader can resolve: the command
line passes :func:`bench.run.resolve.todays_resolution`). A record whose identity
is unknown is never called stale. ``bench run`` moves a stale record aside
(:func:`set_aside`: ``runs/stale/<run-id>.json``, its checkpoints under
``checkpoints/stale/``; nothing is deleted) and runs it again; ``bench
leaderboard`` shows what it cannot move in a row of its own, marked
``(stale)`` (:func:`mark_stale`, :data:`~bench.store.record.STALE_MARK`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from scaleqbench.bench.errors import CorruptRecordError
from scaleqbench.bench.spec import Resolved, RunSpec
from scaleqbench.bench.spec_parsing import plain
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.store.run_store import RunStore

__all__ = ["MIGRATED_FOLDER", "STALE_FOLDER", "Today", "changes", "describe_changes",
           "mark_stale", "record_identity", "replace_stale", "set_aside", "set_aside_files"]

#: where set-aside records go, under ``runs/`` (and their checkpoints, under ``checkpoints/``)
STALE_FOLDER = "stale"
#: where the original file of a record that ``bench run`` re-filed under its new run id goes
MIGRATED_FOLDER = "migrated"
#: what a spec (its options and overrides as given) computes with today, None when unknown
Today = Callable[[RunSpec], Resolved | None]


def record_identity(record: RunRecord) -> Resolved | None:
    """What ``record``'s run computed with (see the module docstring), None when unknown."""
    if record.spec.resolved is not None:
        return record.spec.resolved
    if record.config_values is not None and record.recipe is not None:
        try:
            return Resolved.of(record.config_values, record.recipe)
        except ValueError:
            return None
    return None


def changes(old: Resolved, new: Resolved) -> list[str]:
    """What changed from ``old`` to ``new``, one item per value:
    ``config channels (16, 32, 48) -> (8, 8, 8)``."""
    out = []
    for part in ("config", "recipe"):
        was, now = dict(getattr(old, part)), dict(getattr(new, part))
        for key in sorted(set(was) | set(now)):
            if plain(was.get(key, "unset")) != plain(now.get(key, "unset")):
                out.append(f"{part} {key} {was.get(key, 'unset')} -> {now.get(key, 'unset')}")
    return out


def describe_changes(old: Resolved, new: Resolved, at_most: int = 3) -> str:
    """:func:`changes` on one line, the first ``at_most`` of them and how many more."""
    found = changes(old, new)
    more = len(found) - at_most
    return "; ".join(found[:at_most]) + (f"; {more} more" if more > 0 else "")


def _when(record: RunRecord) -> str:
    return record.finished_at or record.started_at or ""


def mark_stale(records: Iterable[RunRecord], today: Today | None = None) -> list[RunRecord]:
    """Set :attr:`RunRecord.stale` (the reason) on each of ``records`` that is stale, judged
    against the newest identity of its row among ``records`` and, given ``today``, against
    what its method resolves to today. Returns the stale ones."""
    records = list(records)
    newest: dict[tuple, tuple[str, Resolved]] = {}
    for rec in records:
        ident = record_identity(rec)
        row = (rec.spec.protocol, rec.spec.label)
        if ident is not None and (row not in newest or _when(rec) > newest[row][0]):
            newest[row] = (_when(rec), ident)
    stale = []
    for rec in records:
        ident = record_identity(rec)
        if ident is None:
            continue
        latest = newest[(rec.spec.protocol, rec.spec.label)][1]
        if latest != ident:
            rec.stale = f"{describe_changes(ident, latest)} in a newer record"
        elif today is not None and (now := today(rec.spec)) is not None and now != ident:
            rec.stale = f"{describe_changes(ident, now)} today"
        if rec.stale:
            stale.append(rec)
    return stale


def _free(path: Path) -> Path:
    """``path``, or ``<stem>-2<suffix>``, ``-3``... when it is taken: nothing is replaced."""
    n, target = 1, path
    while target.exists():
        n += 1
        target = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return target


def set_aside(record_file: Path, run_id: str | None, into: str = STALE_FOLDER) -> Path:
    """Move a record file out of the run's way, never deleting: to ``runs/<into>/<name>``,
    and the best and per-epoch checkpoints of ``run_id`` (unless None) to
    ``checkpoints/<into>/``. Returns where the record went."""
    record_file = Path(record_file)
    runs = record_file.parent
    target = _free(runs / into / record_file.name)
    target.parent.mkdir(exist_ok=True)
    os.replace(record_file, target)
    if run_id:
        set_aside_files(runs.parent, run_id, into)
    return target


def set_aside_files(folder: Path, run_id: str, into: str = STALE_FOLDER) -> None:
    """Move what a run left beside its record -- its best and per-epoch checkpoints, its
    epoch CSV -- to ``<into>/`` under the folder that holds each, never deleting."""
    for place, name in (("checkpoints", f"{run_id}.pt"), ("checkpoints", f"{run_id}.last.pt"),
                        ("runs", f"{run_id}.epochs.csv")):
        found = Path(folder) / place / name
        if found.is_file():
            moved = _free(found.parent / into / name)
            moved.parent.mkdir(exist_ok=True)
            os.replace(found, moved)


def _other_records(store: RunStore, read: Iterable[str]) -> dict[tuple, list[RunRecord]]:
    """The readable records of the folder's files not among ``read`` (run ids), by slot."""
    skip = set(read)
    by_slot: dict[tuple, list[RunRecord]] = {}
    for path in sorted((store.folder / "runs").glob("*.json")):
        if path.stem in skip:
            continue
        try:
            rec = store.read_file(path)
        except (FileNotFoundError, CorruptRecordError):  # named where the folder is read
            continue
        by_slot.setdefault(rec.spec.slot, []).append(rec)
    return by_slot


def replace_stale(store: RunStore, specs: list[RunSpec], found: dict[str, Any]) -> list[str]:
    """What ``bench run`` does, under the experiment lock, for each resolved spec without a
    record under its id (``found``: run id -> what one read of its file found): it moves
    aside the records of the spec's slot made with other values (stale), and re-files one
    made with the same values under an earlier version's run id as the spec's record
    (updating ``found``). Returns one line per record moved or re-filed, naming where."""
    missing = [s for s in specs if found[s.run_id] is None and s.resolved is not None]
    others = _other_records(store, found) if missing else {}
    notes: list[str] = []
    for spec in missing:
        same = sorted((r for r in others.get(spec.slot, ())
                       if record_identity(r) == spec.resolved),
                      key=lambda r: (r.ok, r.finished_at or ""))
        if same:
            found[spec.run_id] = _refile(store, same[-1], spec)
            notes.append(f"{spec.label} seed {spec.seed}: its record of an earlier version "
                         f"is now {spec.run_id}.json (the original kept in "
                         f"runs/{MIGRATED_FOLDER}/)")
        for rec in others.get(spec.slot, ()):
            ident = record_identity(rec)
            if ident == spec.resolved or rec.path is None:
                continue
            why = (describe_changes(ident, spec.resolved) if ident is not None
                   else "made with a config and recipe that are not known")
            moved = set_aside(rec.path, rec.run_id)
            notes.append(f"{spec.label} seed {spec.seed} is stale ({why}): moved its record "
                         f"to {moved.relative_to(store.folder)}; running it again")
    return notes


def _refile(store: RunStore, record: RunRecord, spec: RunSpec) -> RunRecord:
    """``record`` (made with ``spec``'s values under an earlier run id) written as the record
    of ``spec``; its original file moved to ``runs/migrated/``, never deleted."""
    refiled = dataclasses.replace(record, run_id=spec.run_id, spec=spec, provenance={
        **(record.provenance or {}), "refiled_from": record.run_id})
    original = record.path
    store.write(refiled)
    if original is not None and original != refiled.path:
        set_aside(original, None, into=MIGRATED_FOLDER)
    return refiled
