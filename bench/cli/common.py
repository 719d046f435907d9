"""What several sub-commands share: quiet mode, loading a dataset, filling the dataset cache,
reading experiment folders, writing the report and the closing leaderboard.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from scaleqbench.bench.cli.options import PERF_JSON
from scaleqbench.bench.cli.validate import writing_into
from scaleqbench.bench.errors import NoRecordsError, UnreadableRecordsError

log = logging.getLogger(__name__)


def quiet(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "quiet", False))


def load_dataset(name: str, args: argparse.Namespace, seed: int):
    from scaleqbench.datasets import load_or_build

    t0 = time.perf_counter()
    ds, path = load_or_build(name, source=args.source, seed=seed, data_root=args.data_root,
                             cache_dir=args.cache_dir)
    return ds, path, time.perf_counter() - t0


def check_sources(specs) -> None:
    """Make sure the data source of every run is there, once per dataset, source and data
    root (not per seed), without building a dataset or writing anything.

    A missing data source then fails the command with one line instead of failing every run.
    The datasets themselves are built later, one per run that is computed
    (:func:`prepare_datasets` for launchers whose tasks would race to build them).
    """
    from scaleqbench.datasets import check_buildable

    for key in dict.fromkeys((s.dataset, s.source, s.data_root) for s in specs):
        check_buildable(*key)


def prepare_datasets(specs) -> None:
    """Make sure every dataset the runs need is cached, once, before their jobs start: jobs on
    other machines (Slurm tasks) then find the cache filled instead of racing to build it. A
    dataset already cached is only checked, not loaded: each run loads its own."""
    from scaleqbench.datasets import ensure_cached

    for key in dict.fromkeys((s.dataset, s.source, s.seed, s.data_root, s.cache_dir)
                             for s in specs):
        ensure_cached(*key)


def read_folders(folders: Sequence[str | Path], strict: bool = False):
    """The records of experiment folders (a :class:`bench.store.collection.Collection`).

    Every file that is not a readable record is named on stderr, one line each,
    and left out; with ``strict`` that is an error instead. Runs found more than
    once are counted once, said in a note, and so are stale records (made with another
    config or recipe than a newer record or today's registry), which show marked.
    """
    from scaleqbench.bench.run.resolve import todays_resolution
    from scaleqbench.bench.store.collection import load_folders

    found = load_folders(list(folders), today=todays_resolution)
    for problem in found.problems:
        print(f"bench: warning: {problem}; left out", file=sys.stderr)
    for note in found.notes:
        print(f"bench: note: {note}", file=sys.stderr)
    if strict and found.problems:
        raise UnreadableRecordsError(f"{len(found.problems)} record file(s) could not be read "
                                     "(named above); --strict stops here: move or re-run them")
    if not found.records:
        raise NoRecordsError(f"no readable run records in {', '.join(map(str, folders))} "
                             f"({len(found.problems)} unreadable file(s), named above)")
    return found


def write_report(found, out_dir: Path, perf_json: Path | None) -> Path:
    """``found``: the records (:func:`read_folders`) the report is made of."""
    from scaleqbench.bench.report import build_report

    perf = perf_json if perf_json is not None and perf_json.is_file() else None
    with writing_into(out_dir):
        written = build_report(found, out_dir, perf_json=perf)
    figures = sum(1 for f in written if f.suffix == ".png")
    page = next(f for f in written if f.name == "index.html")
    print(f"report: {len(written)} files ({figures} figures) in {out_dir}; open {page}")
    return page


def show_leaderboard(records: list, out: Path | None = None) -> None:
    """Print the leaderboard of ``records`` and, given a folder ``out``, write it there."""
    from scaleqbench.bench.report.leaderboard import (
        format_leaderboard,
        records_frame,
        summarize,
        write_leaderboard,
    )

    board = summarize(records_frame(records))
    print(format_leaderboard(board))
    if out is not None:
        md, csv = write_leaderboard(board, out)
        print(f"\nwrote {md} and {csv}")


def finish(out: Path, records: list, strict: bool = True, report: bool = True) -> int:
    """Collate and print the leaderboard (and write the report), then one summary line of
    ``records`` (the runs this command ran); 1 when ``strict`` and any of them failed, so
    that a script or CI notices a partial sweep."""
    found = read_folders([out])
    show_leaderboard(found.records, out)
    if report:
        try:
            write_report(found, out / "report", Path(PERF_JSON))
        except Exception as exc:  # the records and leaderboard are safe; say so, don't crash
            log.warning("report not written (%s: %s); retry with `bench report %s`",
                        type(exc).__name__, exc, out)
    failed = [r for r in records if r and not r.ok]
    for r in failed:
        print(f"failed: {r.method} seed {r.seed}: {r.last_error_line or '?'} "
              f"(record {r.run_id})")
    missing = sum(1 for r in records if r is None)
    print(f"summary: {len(records)} run(s) this time, {len(records) - len(failed) - missing} "
          f"ok, {len(failed)} failed" + (f", {missing} without a record" if missing else ""))
    return 1 if strict and (failed or missing) else 0
