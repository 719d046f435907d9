"""``bench leaderboard FOLDER...``: the leaderboard of experiment folders.
"""

from __future__ import annotations

import argparse

from scaleqbench.bench.cli.common import read_folders, show_leaderboard
from scaleqbench.bench.cli.validate import writable_folder


def cmd_leaderboard(args: argparse.Namespace) -> int:
    records = read_folders(args.folders, args.strict).records
    show_leaderboard(records, writable_folder(args.out) if args.out else None)
    return 0
