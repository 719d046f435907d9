"""``bench reproduce TABLE``: run a published table's sweep and set ours beside the paper's
(:mod:`scaleqbench.bench.published.reproduce`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from scaleqbench.bench.errors import BadArgumentError
from scaleqbench.bench.published.reference import load_published
from scaleqbench.bench.published.render import render_list, render_table
from scaleqbench.bench.published.reproduce import EMBEDDED, comparison, default_out, plan
from scaleqbench.bench.published.table_files import list_tables, load_table
from scaleqbench.bench.spec_parsing import parse_int_list


def _methods(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [m.strip() for m in text.split(",") if m.strip()]


def cmd_reproduce(args: argparse.Namespace) -> int:
    """``bench reproduce TABLE`` / ``bench reproduce --list``."""
    from scaleqbench.bench.store.atomic_io import atomic_write_text
    from scaleqbench.bench.cli.cmd_run import run_sweep
    from scaleqbench.bench.cli.common import read_folders
    from scaleqbench.bench.cli.validate import check_device, check_sweep_limits

    if args.list:
        print(render_list([load_table(n) for n in list_tables()], load_published()))
        return 0
    if not args.table:
        raise BadArgumentError("name a table (" + ", ".join(list_tables()) + ") or use --list")
    table = load_table(args.table)
    check_sweep_limits(args)
    # before anything is written, as bench run does (on Slurm the device is the nodes')
    check_device(args.device, here=args.launcher == "local")
    out = Path(args.out) if args.out else default_out(table, args.source)
    seeds = parse_int_list(args.seeds, "seed", lo=0) if args.seeds else None
    runs = plan(table, args.source, methods=_methods(args.methods), seeds=seeds,
                epochs=args.epochs, limit_train=args.limit_train, limit_eval=args.limit_eval,
                out=out,
                data_root=args.data_root, cache_dir=args.cache_dir, device=args.device)
    if args.source == EMBEDDED:
        print(f"bench reproduce {table.name}: EMBEDDED, SCALED DOWN ({table.embedded.note}); "
              "not comparable with the paper, and never set beside it. For the published "
              f"protocol: bench reproduce {table.name} --source torchvision --data-root DIR")
    # a column capped to another's size (--limit-train) is the same run: made once
    rc = run_sweep(list(dict.fromkeys(p.spec for p in runs)), out, args)
    if args.detach or rc == 130:
        return rc
    found = read_folders([out])
    text = render_table(table, comparison(runs, found.records), args.source)
    atomic_write_text(out / "reproduce.md", text)
    print("\n" + text + f"\nwrote {out / 'reproduce.md'}")
    return rc
