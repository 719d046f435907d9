"""``bench run``: expand a sweep, launch what is not done, follow it, collate.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from scaleqbench.bench.cli.common import finish, prepare_datasets, quiet
from scaleqbench.bench.cli.options import launcher_options
from scaleqbench.bench.cli.validate import check_run_args
from scaleqbench.bench.spec import RunSpec, expand


def cmd_run(args: argparse.Namespace) -> int:
    specs, out = sweep_specs(args)
    return run_sweep(specs, out, args)


def sweep_specs(args: argparse.Namespace) -> tuple[list[RunSpec], Path]:
    """The RunSpecs of a ``bench run`` invocation (checked) and its experiment folder."""
    methods, seeds = check_run_args(args)
    out = Path(args.out or f"results/{args.dataset}-{args.preset}")
    specs = expand(methods, args.dataset, seeds, args.preset, input=args.input,
                   source=args.source,
                   epochs=args.epochs, limit_train=args.limit_train, limit_eval=args.limit_eval,
                   experiment=out.name, data_root=args.data_root, cache_dir=args.cache_dir,
                   device=args.device)
    return specs, out


def run_sweep(specs: list, out: Path, args: argparse.Namespace) -> int:
    """Run ``specs`` into experiment folder ``out`` through ``args``' launcher (``bench run``'s
    launcher, resume and report options), then print the leaderboard and write the report;
    ``bench run`` and ``bench reproduce`` share it. Returns the exit status."""
    from scaleqbench.bench.cli.signals import exit_status, sigterm_interrupts
    from scaleqbench.bench.launch.registry import make_launcher
    from scaleqbench.bench.launch.sweep import plan_launch, save_sweep, undone_if_refused
    from scaleqbench.bench.store.run_store import RunStore

    launcher = make_launcher(args.launcher, launcher_options(args), progress=not quiet(args))
    # a missing data source is refused before the sweep is written (the cache is not --out):
    # before a new folder is made, where every run is to run; in a folder that has a sweep,
    # for the runs still to run (which only the lock may decide), before sweep.json changes
    created = not out.exists()
    if created:
        prepare_datasets(specs)
    store = RunStore(out)
    store.ensure_writable()
    command = "bench " + " ".join(shlex.quote(a) for a in args.argv)
    with store.lock(), sigterm_interrupts():
        with undone_if_refused(out, created):
            # one read of each record decides; a run whose job is still out there (an
            # earlier --detach) is not launched twice
            plan = plan_launch(out, specs, launcher.name, retry_failed=args.retry_failed)
            todo = plan.todo
            if not created:
                prepare_datasets(todo)
            save_sweep(out, specs, launcher=launcher.name)
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
