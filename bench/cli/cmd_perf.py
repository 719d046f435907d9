"""``bench perf``: median training-step time, counted work and its rate, and peak memory per
method and size (``--contention``: also beside a busy neighbour process).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scaleqbench.bench.cli.common import quiet
from scaleqbench.bench.cli.validate import check_perf_args
from scaleqbench.bench.errors import BadArgumentError


def cmd_perf(args: argparse.Namespace) -> int:
    try:
        from scaleqbench.bench.run import perf
    except ImportError as exc:
        raise BadArgumentError(f"bench perf is not available in this build ({exc})") from exc
    from scaleqbench.bench.run.memory_bound import check_perf_memory, refused_allocation
    from scaleqbench.bench.run.train import pick_device

    sizes, chosen, allocs = check_perf_args(args, perf.ALLOCATORS)
    opts = dict(batch=args.batch, repeats=args.repeats, warmup=args.warmup, config=args.config,
                in_channels=args.channels, device=str(pick_device(args.device)),
                progress=not quiet(args), input=args.input, canvas=args.canvas,
                contention=args.contention)
    check_perf_memory(chosen, sizes, **{k: opts[k] for k in (
        "batch", "config", "in_channels", "device", "input", "canvas")})
    with refused_allocation():
        if args.allocator:
            from scaleqbench.bench.run.perf_isolated import run_perf_isolated

            rows = run_perf_isolated(chosen, sizes, allocs, rounds=args.rounds, **opts)
        else:
            rows = perf.run_perf(chosen, sizes, **opts)
    print(perf.format_perf_table(rows))
    perf.write_perf_json(rows, Path(args.out))
    print(f"\nwrote {args.out}")
    return 0
