"""Command-line options that the parser (:mod:`bench.cli.parser`) and the sub-commands
(``bench.cli.cmd_*``) share: default paths and the launcher option group with the
Slurm flags it defines (``--launcher`` offers every launcher of
:data:`bench.launch.registry.LAUNCHERS`; one flag per :data:`FLAG_FIELDS` field of
``SlurmConfig``).

Both sides import from here, so no command imports the parser. The module stays light
(no torch, no submitit at import time): ``bench --help`` imports it.
"""

from __future__ import annotations

import argparse

from scaleqbench.bench.launch.registry import LAUNCHERS
from scaleqbench.bench.launch.slurm_config import FLAG_FIELDS

__all__ = ["PERF_JSON", "RUN_DEFAULTS", "SLURM_FLAGS", "add_launcher_args", "launcher_options"]

PERF_JSON = "results/perf/perf.json"  # where `bench perf` writes and the reports look

#: ``bench run``'s defaults of the options a sweep file (``--config``) may also set: the
#: parser leaves them unset, so that a flag given wins over the file, and the file over these
RUN_DEFAULTS: dict[str, object] = {
    "methods": "all", "dataset": "mnist-res", "seeds": "0", "preset": "quick",
    "input": "published", "source": "embedded", "device": "auto", "launcher": "local",
}

# the options of add_launcher_args that only a Slurm launcher reads (SlurmConfig overrides),
# generated from SlurmConfig's fields: one list of the cluster options
SLURM_FLAGS = tuple(f.name for f in FLAG_FIELDS)
# every option of the group that a launcher reads (``--launcher`` itself picks the launcher)
_LAUNCHER_READS = (*SLURM_FLAGS, "sbatch_extra", "launcher_config", "detach")


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


def launcher_options(args: argparse.Namespace) -> dict[str, object]:
    """The values of the launcher group that the launcher reads (those it does not take are
    refused by :func:`bench.launch.registry.make_launcher` when given), and the Slurm
    ``setup`` lines of a sweep file (no flag sets them)."""
    options = {k: getattr(args, k) for k in _LAUNCHER_READS}
    if getattr(args, "setup", None):
        options["setup"] = args.setup
    return options
