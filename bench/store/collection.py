"""The records of several experiment folders, each run counted once.

The leaderboard and the report read folders that may overlap: a folder given
twice, a copy of a folder, a run recomputed after run ids changed.
:func:`load_folders` reads each folder once through its
:class:`~bench.store.run_store.RunStore` and keeps one record per run (its
protocol, method and seed, :func:`~bench.store.record.run_identity`), saying
in a note where it met a run again. It marks the stale records
(:func:`~bench.store.identity.mark_stale`: made with another config or recipe than
a newer record of their row, or than today's registry when the reader passes
``today``), which a leaderboard then shows in rows of their own, and says so in a
note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scaleqbench.bench.errors import CorruptRecordError, NoRecordsError
from scaleqbench.bench.store.identity import Today, mark_stale
from scaleqbench.bench.store.record import STALE_MARK, RunRecord, run_identity
from scaleqbench.bench.store.run_store import RunStore

__all__ = ["Collection", "FolderRecords", "load_folders"]


@dataclass
class FolderRecords:
    """The records one experiment folder contributes (copies of earlier ones left out)."""

    folder: Path
    records: list[RunRecord] = field(default_factory=list)


@dataclass
class Collection:
    """The records of several folders, each run once, with what could not be read."""

    folders: list[FolderRecords]
    problems: list[CorruptRecordError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # duplicates counted once, and why

    @property
    def records(self) -> list[RunRecord]:
        return [r for f in self.folders for r in f.records]


def _stands_for_the_run(new: RunRecord, old: RunRecord) -> bool:
    """Whether ``new`` rather than ``old`` (two records of one run) counts: a finished run
    over a failed one, else the later finished (an exact copy: the first one read)."""
    if new.ok != old.ok:
        return new.ok
    return (new.finished_at or "") > (old.finished_at or "")


def load_folders(folders: list[str | Path], today: Today | None = None) -> Collection:
    """Read experiment folders; a run found more than once counts once.

    Copies of a folder, a folder given twice, and a record made before and again
    after run ids changed all count once; a note says where. Stale records are
    marked (see the module docstring; ``today``: what a spec computes with today).
    Raises :class:`NoRecordsError` for a folder without any record file.
    """
    read: list[RunRecord] = []
    out = Collection(folders=[])
    kept: dict[tuple, tuple[int, RunRecord]] = {}  # run -> (folder index, record)
    copies: dict[tuple[str, str], int] = {}
    seen_folders: dict[Path, Path] = {}
    for folder in map(Path, folders):
        real = folder.resolve()
        if real in seen_folders:
            out.notes.append(f"{folder} was given twice (as {seen_folders[real]}): read once")
            continue
        seen_folders[real] = folder
        records, problems = RunStore(folder).scan()
        if not records and not problems:
            raise NoRecordsError(f"no run records under {folder} (expected {folder}/runs/*.json); "
                                 "run `bench run --out` there first")
        out.problems += problems
        read += records
        here = FolderRecords(folder)
        out.folders.append(here)
        for rec in records:
            run = run_identity(rec)
            if run not in kept:
                kept[run] = (len(out.folders) - 1, rec)
                here.records.append(rec)
                continue
            index, first = kept[run]
            where = (str(out.folders[index].folder), str(folder))
            copies[where] = copies.get(where, 0) + 1
            if _stands_for_the_run(rec, first):
                out.folders[index].records = [r for r in out.folders[index].records
                                              if r is not first]
                kept[run] = (len(out.folders) - 1, rec)
                here.records.append(rec)
    out.notes += _copy_notes(copies)
    kept = {id(r) for r in out.records}
    stale = [r for r in mark_stale(read, today) if id(r) in kept]
    if stale:
        out.notes.append(f"{len(stale)} record(s) are stale, e.g. {stale[0].method} seed "
                         f"{stale[0].seed}: {stale[0].stale}; shown in rows of their own, "
                         f"marked{STALE_MARK}; `bench run` moves them aside and runs them again")
    return out


def _copy_notes(copies: dict[tuple[str, str], int]) -> list[str]:
    """One note per pair of folders that held the same runs (a folder with itself: two
    files of one run)."""
    notes = []
    for (first, other), n in copies.items():
        if first == other:
            notes.append(f"{n} record file(s) in {first} hold a run that another file there "
                         "holds too: each run counted once (the latest finished)")
        else:
            notes.append(f"{n} run(s) of {other} are also in {first} (same protocol, method "
                         "and seed): each counted once")
    return notes
