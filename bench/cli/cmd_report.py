"""``bench report FOLDER...``: tables, figures and index.html from experiment folders.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scaleqbench.bench.cli.common import read_folders, write_report
from scaleqbench.bench.cli.options import note_unused_options
from scaleqbench.bench.cli.validate import check_out_path, writable_folder


def cmd_report(args: argparse.Namespace) -> int:
    folders = [Path(f) for f in args.folders]
    out = check_out_path(args.out) if args.out is not None else (
        folders[0] / "report" if len(folders) == 1 else Path("results/report"))
    found = read_folders(folders, args.strict)
    note_unused_options(args)
    write_report(found, writable_folder(out), Path(args.perf) if args.perf else None)
    return 0
