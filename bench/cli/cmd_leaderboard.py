"""``bench leaderboard FOLDER...``: the leaderboard of experiment folders.
"""

from __future__ import annotations

import argparse

from scaleqbench.bench.cli.common import read_folders, show_leaderboard
from scaleqbench.bench.cli.validate import check_out_path, writable_folder


def cmd_leaderboard(args: argparse.Namespace) -> int:
    out = check_out_path(args.out) if args.out is not None else None  # '' is no folder
    records = read_folders(args.folders, args.strict).records
    show_leaderboard(records, writable_folder(out) if out is not None else None)
    return 0
