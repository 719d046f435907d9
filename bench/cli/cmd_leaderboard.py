"""``bench leaderboard FOLDER...``: the leaderboard of experiment folders.
"""

from __future__ import annotations

import argparse

from scaleqbench.bench.cli.common import read_folders
from scaleqbench.bench.cli.validate import writable_folder

def cmd_leaderboard(args: argparse.Namespace) -> int:
    from scaleqbench.bench.report.leaderboard import (
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
