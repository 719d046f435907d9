"""Command-line options that the parser (:mod:`bench.cli.main`) and the sub-commands
(``bench.cli.cmd_*``) share: default paths, the launcher option group with the
Slurm flags it defines (``--launcher`` offers every launcher of
:data:`bench.launch.registry.LAUNCHERS`), and the RunSpecs that ``bench run``'s
arguments describe.

Both sides import from here, so no command imports the parser. The module stays light
(no torch, no submitit at import time): ``bench --help`` imports it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scaleqbench.bench.errors import BadArgumentError
from scaleqbench.bench.launch.registry import LAUNCHERS
from scaleqbench.bench.launch.slurm_config import FLAG_FIELDS
from scaleqbench.bench.spec import RunSpec, expand, parse_int_list, parse_methods

__all__ = ["PERF_JSON", "SLURM_FLAGS", "add_launcher_args", "sweep_specs"]

PERF_JSON = "results/perf/perf.json"  # where `bench perf` writes and the reports look

# the options of add_launcher_args that only a Slurm launcher reads (SlurmConfig overrides),
# generated from SlurmConfig's fields: one list of the cluster options
SLURM_FLAGS = tuple(f.name for f in FLAG_FIELDS)


def add_launcher_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("launcher (see bench/launch/slurm_config.py for the config file)")
    g.add_argument("--launcher", choices=list(LAUNCHERS), default="local",
                   help="where the runs' jobs run (default: here, one after the other)")
    g.add_argument("--launcher-config", default=None,
                   help="TOML file with [slurm] options (also read: [tool.scaleqbench.slurm] "
                        "of ./pyproject.toml)")
    g.add_argument("--detach", action="store_true", help="submit and return at once")
    for f in FLAG_FIELDS:
        kind = int if f.type in ("int", int) else None
        g.add_argument("--" + f.name.replace("_", "-"), type=kind, help=f.metadata["help"])
    g.add_argument("--sbatch-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option (repeatable)")


def sweep_specs(args: argparse.Namespace) -> tuple[list[RunSpec], Path]:
    """The RunSpecs of a ``bench run`` invocation (validated) and its experiment folder."""
    # imported here, not at the top: datasets loads torch, and `bench --help` imports this module
    from scaleqbench.datasets import dataset_info

    from scaleqbench.bench.spec import preset
    from scaleqbench.bench.cli.validate import check_device, check_method_options, dataset_family

    dataset_info(args.dataset)
    family, channels = dataset_family(args.dataset)
    methods = parse_methods(args.methods)
    # options and device are checked here, before anything is written: a sweep must not
    # start only to record every run failed (on Slurm the device is the nodes' to check)
    check_method_options(methods, preset(args.preset).config or family, channels,
                         size=max(dataset_info(args.dataset).sizes))
    check_device(args.device, here=getattr(args, "launcher", "local") == "local")
    seeds = parse_int_list(args.seeds, "seed", lo=0, hi=2**32 - 1)
    if args.epochs is not None and args.epochs < 1:
        raise BadArgumentError(f"--epochs must be >= 1, got {args.epochs}")
    for flag in ("limit_train", "limit_eval"):
        v = getattr(args, flag)
        if v is not None and v < 2:
            raise BadArgumentError(f"--{flag.replace('_', '-')} must be >= 2, got {v}")
    out = Path(args.out or f"results/{args.dataset}-{args.preset}")
    specs = expand(methods, args.dataset, seeds, args.preset, input=args.input,
                   source=args.source,
                   epochs=args.epochs, limit_train=args.limit_train, limit_eval=args.limit_eval,
                   experiment=out.name, data_root=args.data_root, cache_dir=args.cache_dir,
                   device=args.device)
    return specs, out
