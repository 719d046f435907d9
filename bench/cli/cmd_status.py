"""``bench status EXPERIMENT``: the state of each run of a sweep.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def cmd_status(args: argparse.Namespace) -> int:
    from scaleqbench.bench.launch.api import STATES
    from scaleqbench.bench.launch.sweep import sweep_status

    rows = sweep_status(Path(args.experiment))
    table = pd.DataFrame(rows, columns=["method", "seed", "state", "job", "run_id", "detail"])
    print(table.to_markdown(index=False))
    counts = table.state.value_counts()
    print("\n" + ", ".join(f"{counts[s]} {s}" for s in STATES if s in counts))
    return 0
