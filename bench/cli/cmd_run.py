"""``bench run``: expand a sweep, launch what is not done, follow it, collate.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from scaleqbench.bench.cli.common import finish, prepare_datasets, quiet
from scaleqbench.bench.cli.options import SLURM_FLAGS, sweep_specs
from scaleqbench.bench.cli.validate import runs_that_may_run

def cmd_run(args: argparse.Namespace) -> int:
    specs, out = sweep_specs(args)
    return run_sweep(specs, out, args)


def run_sweep(specs: list, out: Path, args: argparse.Namespace) -> int:
    """Run ``specs`` into experiment folder ``out`` through ``args``' launcher (``bench run``'s
    launcher, resume and report options), then print the leaderboard and write the report;
    ``bench run`` and ``bench reproduce`` share it. Returns the exit status."""
    from scaleqbench.bench.launch.api import ACTIVE
    from scaleqbench.bench.launch.registry import make_launcher
    from scaleqbench.bench.launch.sweep import pending, sweep_status
    from scaleqbench.bench.store.run_store import ExperimentLock, ensure_writable
    from scaleqbench.bench.store.settle import current_record
    from scaleqbench.bench.cli.signals import exit_status, sigterm_interrupts
    from scaleqbench.bench.launch.sweep import save_sweep, undone_if_refused

    options = {k: getattr(args, k) for k in (*SLURM_FLAGS, "sbatch_extra", "launcher_config",
                                             "detach")}
    launcher = make_launcher(args.launcher, options, progress=not quiet(args))
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
        return finish(out, records, report=args.report)
