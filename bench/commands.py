"""The sub-commands behind ``bench`` (argument parsing lives in :mod:`bench.cli`).

A sub-command imports the modules only it needs inside its function, so that
``bench list`` does not load timm, submitit or matplotlib; none of these imports
is there to break a cycle (tests/test_architecture.py checks for cycles).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from scalebench.bench.errors import (
    BadArgumentError,
    DataSourceError,
    NoRecordsError,
    UnreadableRecordsError,
)
from scalebench.bench.options import PERF_JSON, SLURM_FLAGS, sweep_specs
from scalebench.bench.spec import PRESETS
from scalebench.bench.validate import (
    check_equivariance_args,
    check_perf_args,
    check_seed,
    runs_that_may_run,
    writable_folder,
    writing_into,
)

log = logging.getLogger(__name__)


def _quiet(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "quiet", False))


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "methods":
        from scalebench import methods

        rows = []
        for name in methods.list_methods():
            e = methods.get_method(name)
            rows.append({"method": name + (f" (= {e.alias_of})" if e.alias_of else ""),
                         "family": e.family, "paper": e.paper, "year": e.year or "—",
                         "reference": e.reference or "—",
                         "configs": ", ".join(e.configs), "input": e.input,
                         "source": e.source})
        print(pd.DataFrame(rows).to_markdown(index=False))
        print("\nplus timm:<model-name> for any timm model (e.g. timm:resnet18); input: how "
              "the method's paper fed it smaller images (bench run --input published)")
    elif args.what == "datasets":
        from scalebench.datasets import DATASETS

        def span(sizes) -> str:
            return f"{min(sizes)}..{max(sizes)}" if len(sizes) > 1 else str(sizes[0])

        rows = [{"dataset": d.name, "sources": ", ".join(d.sources), "sizes": span(d.sizes),
                 "train sizes": span(d.train_sizes) if d.train_sizes else "all",
                 "description": d.description} for d in DATASETS.values()]
        print(pd.DataFrame(rows).to_markdown(index=False))
    else:
        rows = [{"preset": p.name, "config": p.config or "dataset family (mnist / stl10)",
                 "description": p.description} for p in PRESETS.values()]
        print(pd.DataFrame(rows).to_markdown(index=False))
    return 0


def _load_dataset(name: str, args: argparse.Namespace, seed: int):
    from scalebench.datasets import load_or_build

    t0 = time.perf_counter()
    ds, path = load_or_build(name, source=args.source, seed=seed, data_root=args.data_root,
                             cache_dir=args.cache_dir)
    return ds, path, time.perf_counter() - t0


def cmd_data(args: argparse.Namespace) -> int:
    check_seed(args.seed)
    ds, path, secs = _load_dataset(args.dataset, args, args.seed)
    print(f"dataset {ds.name} (protocol {ds.protocol}, source {ds.source}, seed {ds.seed}) "
          f"ready in {secs:.1f} s")
    print(f"cache: {path or '(not cached)'}")
    print(f"channels {ds.in_channels}, classes {ds.num_classes}, full size {ds.full_size}, "
          f"augmentation {ds.augment or 'none'}")
    for split_name in ("train", "val", "test"):
        split = getattr(ds, split_name)
        print(f"{split_name:5s} {len(split):6d} images")
    if ds.scale_kind == "size":
        hist = ds.train.size_histogram()
        print("train images per size: " + ", ".join(f"{s}:{n}" for s, n in hist.items()))
    else:
        counts = torch.histc(ds.train.scale, bins=7, min=0.3, max=1.0).long().tolist()
        edges = [0.3 + 0.1 * i for i in range(8)]
        print("train images per shrink factor: " + ", ".join(
            f"[{a:.1f},{b:.1f}):{n}" for a, b, n in zip(edges, edges[1:], counts)))
    return 0


def prepare_datasets(specs) -> None:
    """Make sure every dataset the runs need is cached, once, before any job starts.

    A missing data source then fails the command with one line instead of failing every
    run, and Slurm tasks find the cache filled instead of racing to build it. A dataset
    already cached is only checked, not loaded: each run loads its own.
    """
    from scalebench.datasets import ensure_cached

    for key in dict.fromkeys((s.dataset, s.source, s.seed, s.data_root, s.cache_dir)
                             for s in specs):
        ensure_cached(*key)


def read_folders(folders: Sequence[str | Path], strict: bool = False):
    """The records of experiment folders (a :class:`bench.records.Collection`).

    Every file that is not a readable record is named on stderr, one line each,
    and left out; with ``strict`` that is an error instead. Runs found more than
    once are counted once, said in a note.
    """
    from scalebench.bench.records import load_folders

    found = load_folders(list(folders))
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
    from scalebench.bench.report import build_report

    perf = perf_json if perf_json is not None and perf_json.is_file() else None
    with writing_into(out_dir):
        written = build_report(found, out_dir, perf_json=perf)
    figures = sum(1 for f in written if f.suffix == ".png")
    page = next(f for f in written if f.name == "index.html")
    print(f"report: {len(written)} files ({figures} figures) in {out_dir}; open {page}")
    return page


def _finish(out: Path, records: list, strict: bool = True, report: bool = True) -> int:
    """Collate and print the leaderboard (and write the report); non-zero when ``strict``
    and every run failed."""
    from scalebench.bench.leaderboard import (
        format_leaderboard,
        records_frame,
        summarize,
        write_leaderboard,
    )

    found = read_folders([out])
    board = summarize(records_frame(found.records))
    md, csv = write_leaderboard(board, out)
    print(format_leaderboard(board))
    print(f"\nwrote {md} and {csv}")
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
    return 1 if strict and failed and len(failed) == len(records) else 0


def cmd_run(args: argparse.Namespace) -> int:
    specs, out = sweep_specs(args)
    return run_sweep(specs, out, args)


def run_sweep(specs: list, out: Path, args: argparse.Namespace) -> int:
    """Run ``specs`` into experiment folder ``out`` through ``args``' launcher (``bench run``'s
    launcher, resume and report options), then print the leaderboard and write the report;
    ``bench run`` and ``bench reproduce`` share it. Returns the exit status."""
    from scalebench.bench.launch_api import ACTIVE
    from scalebench.bench.launchers import make_launcher, pending, sweep_status
    from scalebench.bench.records import ExperimentLock, ensure_writable
    from scalebench.bench.settle import current_record
    from scalebench.bench.signals import exit_status, sigterm_interrupts
    from scalebench.bench.sweep import save_sweep, undone_if_refused

    options = {k: getattr(args, k) for k in (*SLURM_FLAGS, "sbatch_extra", "launcher_config",
                                             "detach")}
    launcher = make_launcher(args.launcher, options, progress=not _quiet(args))
    # a missing data source is refused before the folder is touched (the cache is not --out)
    prepare_datasets(runs_that_may_run(specs, out, args.retry_failed))
    created = not out.exists()
    ensure_writable(out)
    command = "bench " + " ".join(shlex.quote(a) for a in args.argv)
    with ExperimentLock(out), sigterm_interrupts():
        with undone_if_refused(out, created):
            save_sweep(out, specs, launcher=launcher.name)
            todo = pending(specs, out, retry_failed=args.retry_failed)
            done = len(specs) - len(todo)
            # a run whose job is still out there (an earlier --detach) is not launched twice
            active = {r["run_id"] for r in sweep_status(out, todo) if r["state"] in ACTIVE}
            todo = [s for s in todo if s.run_id not in active]
            print(f"bench run: {len(specs)} runs in {out} ({done} already done"
                  + (f", {len(active)} still queued or running" if active else "")
                  + f", {len(todo)} to run)")
            prepare_datasets(todo)
            submission = launcher.submit(todo, out, command)
        try:
            if args.detach:
                print(f"bench run: {submission.summary}; follow with `bench status {out}`, "
                      f"collate with `bench collect {out}`")
                return 0
            launcher.follow(submission, out)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (signals.Terminated)
            print(f"\nbench run: interrupted; {launcher.interrupt_hint.format(out=out)}; "
                  "re-run the same command to resume", flush=True)
            return exit_status(exc)
        # a damaged record is named by the leaderboard's reader below and counts as missing
        records = [current_record(out, s.run_id) for s in todo]
        return _finish(out, records, report=args.report)


def cmd_status(args: argparse.Namespace) -> int:
    from scalebench.bench.launch_api import STATES
    from scalebench.bench.launchers import sweep_status

    rows = sweep_status(Path(args.experiment))
    table = pd.DataFrame(rows, columns=["method", "seed", "state", "job", "run_id", "detail"])
    print(table.to_markdown(index=False))
    counts = table.state.value_counts()
    print("\n" + ", ".join(f"{counts[s]} {s}" for s in STATES if s in counts))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from scalebench.bench.launch_api import ACTIVE
    from scalebench.bench.launchers import settle_sweep, sweep_status
    from scalebench.bench.records import ExperimentLock, scan_records
    from scalebench.bench.sweep import load_sweep

    out = Path(args.experiment)
    specs = load_sweep(out)
    with ExperimentLock(out):
        settled = settle_sweep(out, specs)
        if settled:
            print(f"bench collect: {settled} run(s) ended without a record; recorded as failed")
        active = [r for r in sweep_status(out, specs) if r["state"] in ACTIVE]
        if active:
            print(f"bench collect: {len(active)} run(s) still queued or running; their records "
                  f"will change this leaderboard: collect again when `bench status {out}` "
                  "shows none")
        return _finish(out, [r for r in scan_records(out)[0] if not r.ok],
                       strict=False, report=args.report)


def cmd_report(args: argparse.Namespace) -> int:
    folders = [Path(f) for f in args.folders]
    out = Path(args.out) if args.out else (folders[0] / "report" if len(folders) == 1
                                           else Path("results/report"))
    found = read_folders(folders, args.strict)
    write_report(found, writable_folder(out), Path(args.perf) if args.perf else None)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from scalebench.bench.leaderboard import (
        format_leaderboard,
        records_frame,
        summarize,
        write_leaderboard,
    )

    board = summarize(records_frame(read_folders(args.folders, args.strict).records))
    out = writable_folder(args.out) if args.out else None
    print(format_leaderboard(board))
    if out is not None:
        md, csv = write_leaderboard(board, out)
        print(f"\nwrote {md} and {csv}")
    return 0


def cmd_equivariance(args: argparse.Namespace) -> int:
    from scalebench.bench.equivariance_cmd import run_equivariance
    from scalebench.bench.train import pick_device

    device = pick_device(check_equivariance_args(args))
    ds, _, _ = _load_dataset(args.dataset, args, args.seed)
    return run_equivariance(args, ds, device)


def cmd_perf(args: argparse.Namespace) -> int:
    try:
        from scalebench.bench import perf
    except ImportError as exc:
        raise BadArgumentError(f"bench perf is not available in this build ({exc})") from exc
    from scalebench.bench.train import pick_device

    from scalebench.bench.memory_bound import check_perf_memory, refused_allocation

    sizes, chosen = check_perf_args(args)
    opts = dict(batch=args.batch, repeats=args.repeats, warmup=args.warmup, config=args.config,
                in_channels=args.channels, device=str(pick_device(args.device)),
                progress=not _quiet(args), input=args.input, canvas=args.canvas)
    allocs = [a.strip() for a in (args.allocator or "").split(",") if a.strip()]
    if args.allocator is not None and (not allocs or set(allocs) - set(perf.ALLOCATORS)
                                       or args.rounds < 1):
        raise BadArgumentError(f"--allocator takes {' and/or '.join(perf.ALLOCATORS)} "
                               f"(got {args.allocator!r}) and --rounds must be >= 1")
    check_perf_memory(chosen, sizes, **{k: opts[k] for k in (
        "batch", "config", "in_channels", "device", "input", "canvas")})
    with refused_allocation():
        if args.allocator:
            rows = perf.run_perf_isolated(chosen, sizes, allocs, rounds=args.rounds, **opts)
        else:
            rows = perf.run_perf(chosen, sizes, **opts)
    print(perf.format_perf_table(rows))
    perf.write_perf_json(rows, Path(args.out))
    print(f"\nwrote {args.out}")
    return 0
