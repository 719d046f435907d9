"""``bench reproduce TABLE``: run a published table's sweep and set ours beside the paper's
(:mod:`scaleqbench.bench.published.reproduce`); ``bench reproduce PATH.toml`` runs a table
file of one's own, checked in full before anything runs (one line per problem)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from scaleqbench.bench.errors import BadArgumentError
from scaleqbench.bench.published.reference import load_published
from scaleqbench.bench.published.render import render_list, render_table
from scaleqbench.bench.published.reproduce import (
    EMBEDDED,
    Planned,
    comparison,
    default_out,
    plan,
)
from scaleqbench.bench.published.table_files import (
    Table,
    TableProblems,
    list_tables,
    load_table,
)
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
    from scaleqbench.bench.cli.validate import (
        check_launch_device,
        check_recipe_arg,
        check_sweep_limits,
    )
    from scaleqbench.bench.run.resolve import resolve

    if args.list:
        print(render_list([load_table(n) for n in list_tables()], load_published()))
        return 0
    if not args.table:
        raise BadArgumentError("name a table (" + ", ".join(list_tables()) + ") or use --list")
    table = _table(args.table)
    check_sweep_limits(args)
    recipe = check_recipe_arg(args, dict(table.recipe))
    # before anything is written, as bench run does (on Slurm the device is the nodes')
    check_launch_device(args)
    out = Path(args.out) if args.out else default_out(table, args.source)
    seeds = parse_int_list(args.seeds, "seed", lo=0) if args.seeds else None
    runs = plan(table, args.source, methods=_methods(args.methods), seeds=seeds,
                epochs=args.epochs, limit_train=args.limit_train, limit_eval=args.limit_eval,
                recipe=recipe, out=out, data_root=args.data_root, cache_dir=args.cache_dir,
                device=args.device)
    runs = [Planned(p.column, resolve(p.spec)) for p in runs]  # what each run computes with
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


def _table(name: str) -> Table:
    """The table ``bench reproduce NAME`` runs: a shipped one, or a file of one's own, whose
    every problem is one line naming the file and the field (:class:`FileProblems`)."""
    from scaleqbench.bench.cli.sweep_file import FileProblems

    try:
        table = load_table(name)
    except TableProblems as exc:
        raise FileProblems(exc.problems) from None
    if table.file is not None:
        problems = _check_names(table)
        if problems:
            raise FileProblems(problems)
    return table


def _check_names(table: Table) -> list[str]:
    """What a table file names that this installation does not have or take: methods,
    datasets, the preset, the input policy, method options, recipe fields; one line each."""
    from scaleqbench.bench.cli.method_options import check_recipe
    from scaleqbench.bench.cli.validate import check_options_on
    from scaleqbench.bench.errors import BenchError
    from scaleqbench.bench.spec import INPUT_CHOICES, PRESETS, preset
    from scaleqbench.datasets import dataset_info
    from scaleqbench.methods import get_method

    problems: list[str] = []

    def check(where: str, fn: Callable[[], object]) -> bool:
        try:
            fn()
            return True
        except (BenchError, ValueError, KeyError) as exc:
            problems.append(f"{table.file}: {where}: {str(exc).strip(chr(39))}")
            return False

    known = all([check(f"methods ({m})", lambda m=m: get_method(m)) for m in table.methods])
    check("preset", lambda: preset(table.preset))
    if table.input not in INPUT_CHOICES:
        problems.append(f"{table.file}: input: {table.input!r} is not one of "
                        f"{', '.join(INPUT_CHOICES)}")
    for key, value in table.recipe:
        check(f"recipe.{key}", lambda key=key, value=value: check_recipe({key: value}, "recipe"))
    for i, column in enumerate(table.columns):
        where = f"column {i + 1} ({column.key})"
        if check(f"{where} dataset", lambda: dataset_info(column.dataset)) and known \
                and table.preset in PRESETS:
            check(f"{where} method_options", lambda: check_options_on(
                [(m, column.options_for(m)) for m in table.methods], column.dataset,
                preset(table.preset).config))
    return problems
