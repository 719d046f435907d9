"""``bench collect EXPERIMENT``: settle ended jobs of a detached sweep, then collate.
"""

from __future__ import annotations

import argparse
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
        active = [r for r in sweep_status(out, specs) if r["state"] in ACTIVE]
        records = store.scan()[0]
        if active and not records:  # nothing has ended yet: nothing to collate, no error
            print(f"bench collect: all {len(active)} run(s) of {out} are still queued or "
                  f"running; nothing to collate yet: follow them with `bench status {out}`")
            return 0
        if active:
            print(f"bench collect: {len(active)} run(s) still queued or running; their records "
                  f"will change this leaderboard: collect again when `bench status {out}` "
                  "shows none")
        return finish(out, [r for r in records if not r.ok],
                       strict=False, report=args.report)
