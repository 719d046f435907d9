"""``bench run``: expand a sweep (flags, or a sweep file with ``--config``), resolve what each
run computes with, launch what is not done (re-running stale runs), follow it, collate.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from scaleqbench.bench.cli.common import check_sources, finish, prepare_datasets, quiet
from scaleqbench.bench.cli.options import launcher_options, note_unused_options
from scaleqbench.bench.cli.sweep_file import run_settings
from scaleqbench.bench.cli.validate import check_out_path, check_recipe_arg, check_run_args
from scaleqbench.bench.spec import RunSpec, expand


def cmd_run(args: argparse.Namespace) -> int:
    args = run_settings(args)  # flags, then the sweep file, then the defaults
    specs, out = sweep_specs(args)
    return run_sweep(specs, out, args)


def sweep_specs(args: argparse.Namespace) -> tuple[list[RunSpec], Path]:
    """The RunSpecs of a ``bench run`` invocation (checked, resolved) and its experiment
    folder: every method x dataset x seed (``args`` as :func:`run_settings` makes them)."""
    methods, seeds = check_run_args(args)
    entries = args.method_entries or [(name, kwargs, {}) for name, kwargs in methods]
    out = check_out_path(args.out) if args.out is not None else Path(_default_out(args))
    specs = []
    for dataset in args.datasets:
        for name, kwargs, own in entries:
            # every method's recipe (the file's) < the method's own < --recipe
            recipe = check_recipe_arg(args, {**args.file_recipe, **own})
            specs += expand([(name, kwargs)], dataset, seeds, args.preset, input=args.input,
                            recipe=recipe, source=args.source, epochs=args.epochs,
                            limit_train=args.limit_train, limit_eval=args.limit_eval,
                            experiment=out.name, data_root=args.data_root,
                            cache_dir=args.cache_dir, device=args.device,
                            precision=args.precision, deterministic=args.deterministic)
    return resolved(specs), out


def _default_out(args: argparse.Namespace) -> str:
    """``results/<dataset>-<preset>``; ``results/<sweep file name>`` for several datasets."""
    if len(args.datasets) > 1 and getattr(args, "config", None):
        return f"results/{Path(args.config).stem}"
    return f"results/{args.datasets[0]}-{args.preset}"


def resolved(specs: list[RunSpec]) -> list[RunSpec]:
    """``specs`` resolved from today's registry (:func:`bench.run.resolve.resolve`), each run
    once: an option typed equal to its default makes the same run as none."""
    from scaleqbench.bench.run.resolve import resolve

    return list({s.run_id: s for s in map(resolve, specs)}.values())


def run_sweep(specs: list, out: Path, args: argparse.Namespace) -> int:
    """Run ``specs`` into experiment folder ``out`` through ``args``' launcher (``bench run``'s
    launcher, resume and report options), then print the leaderboard and write the report;
    ``bench run`` and ``bench reproduce`` share it. Returns the exit status."""
    from scaleqbench.bench.cli.signals import exit_status, sigterm_interrupts
    from scaleqbench.bench.launch.registry import make_launcher
    from scaleqbench.bench.launch.sweep import plan_launch, save_sweep, undone_if_refused
    from scaleqbench.bench.run.loggers import with_log
    from scaleqbench.bench.store.run_store import RunStore

    specs = with_log(specs, getattr(args, "log", ()))  # --log: how the runs report, not what
    launcher = make_launcher(args.launcher, launcher_options(args), progress=not quiet(args))
    # a missing data source is refused before the sweep is written (the cache is not --out):
    # before a new folder is made, where every run is to run; in a folder that has a sweep,
    # for the runs still to run (which only the lock may decide), before sweep.json changes.
    # Only the source is checked here: each run builds its dataset when it is computed
    created = not out.exists()
    if created:
        check_sources(specs)
    store = RunStore(out)
    store.ensure_writable()
    command = "bench " + " ".join(shlex.quote(a) for a in args.argv)
    with store.lock(), sigterm_interrupts():
        note_unused_options(args)  # the command goes on: it will run
        with undone_if_refused(out, created):
            # one read of each record decides; a run whose job is still out there (an
            # earlier --detach) is not launched twice
            plan = plan_launch(out, specs, launcher.name, retry_failed=args.retry_failed,
                               rerun=getattr(args, "rerun", False))
            todo = plan.todo
            if not created:
                check_sources(todo)
            if launcher.name != "local":  # tasks elsewhere: fill the cache once, not racing
                prepare_datasets(todo)
            save_sweep(out, specs, launcher=launcher.name)
            for note in plan.notes:  # stale records moved aside, --rerun, re-filed records
                print(f"bench run: {note}")
            print(f"bench run: {len(specs)} runs in {out} ({plan.done} already done"
                  + (f", {plan.active} still queued or running" if plan.active else "")
                  + f", {len(todo)} to run)")
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
        records = [store.current(s.run_id) for s in todo]
        return finish(out, records, report=args.report)
