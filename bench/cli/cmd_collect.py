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
        if active:
            print(f"bench collect: {len(active)} run(s) still queued or running; their records "
                  f"will change this leaderboard: collect again when `bench status {out}` "
                  "shows none")
        return finish(out, [r for r in store.scan()[0] if not r.ok],
                       strict=False, report=args.report)
