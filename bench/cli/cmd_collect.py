"""``bench collect EXPERIMENT``: settle ended jobs of a detached sweep, then collate.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from scaleqbench.bench.cli.common import finish


def cmd_collect(args: argparse.Namespace) -> int:
    from scaleqbench.bench.launch.api import ACTIVE
    from scaleqbench.bench.launch.sweep import load_sweep, settle_sweep, sweep_status
    from scaleqbench.bench.store.run_store import RunStore

    out = Path(args.experiment)
    specs = load_sweep(out)
    store = RunStore(out)
    with store.lock():
        settled = settle_sweep(out, specs)
        if settled:
            print(f"bench collect: {settled} run(s) ended without a record; recorded as failed")
        rows = sweep_status(out, specs)
        active = [r for r in rows if r["state"] in ACTIVE]
        records, problems = store.scan()
        if not records and not problems:  # nothing has ended yet: say what the sweep is doing
            return nothing_finished(out, rows)
        if active:
            print(f"bench collect: {len(active)} run(s) still queued or running; their records "
                  f"will change this leaderboard: collect again when `bench status {out}` "
                  "shows none")
        return finish(out, [r for r in records if not r.ok],
                      strict=False, report=args.report)


def nothing_finished(out: Path, rows: list[dict]) -> int:
    """``bench collect`` on a sweep without any record yet: its runs' states, from the sweep's
    bookkeeping. Runs still queued or running are no error (0); otherwise
    :class:`NoRecordsError` says what stands in the way."""
    from scaleqbench.bench.errors import NoRecordsError
    from scaleqbench.bench.launch.api import ACTIVE, STATES

    counts = Counter(r["state"] for r in rows)
    said = ", ".join(f"{counts[s]} {s}" for s in STATES if s in counts)
    active = sum(counts[s] for s in ACTIVE)
    if active:
        print(f"bench collect: none of the {len(rows)} run(s) of the sweep in {out} has "
              f"finished yet ({said}); {active} still queued or running; nothing to collate "
              f"yet: follow them with `bench status {out}`")
        return 0
    if counts["unknown"]:
        hint = (f"Slurm cannot say now what their jobs do (`bench status {out}` says why): "
                "collect again when it answers")
    elif counts["not submitted"] == len(rows):
        hint = (f"none was ever submitted: run `bench run --out {out}` with the sweep's "
                "options to start them")
    else:
        hint = f"`bench status {out}` shows each"
    raise NoRecordsError(f"no run records under {out} yet: none of the {len(rows)} run(s) of "
                         f"its sweep has finished ({said}); {hint}")
