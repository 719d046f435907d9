"""Command-line options that the parser (:mod:`bench.cli.parser`) and the sub-commands
(``bench.cli.cmd_*``) share: default paths and the launcher option group with the
Slurm flags it defines (``--launcher`` offers every launcher of
:data:`bench.launch.registry.LAUNCHERS`; one flag per :data:`FLAG_FIELDS` field of
``SlurmConfig``).

It also says, one note each, which options given do nothing in the context they were
given in (:func:`unused_options`). Both sides import from here, so no command imports the
parser. The module stays light
(no torch, no submitit at import time): ``bench --help`` imports it.
"""

from __future__ import annotations

import argparse
import sys

from scaleqbench.bench.launch.registry import LAUNCHERS
from scaleqbench.bench.launch.slurm_config import FLAG_FIELDS

__all__ = ["PERF_JSON", "RUN_DEFAULTS", "SLURM_FLAGS", "add_launcher_args", "launcher_options",
           "note_unused_options", "unused_options"]

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


def _given(args: argparse.Namespace, flag: str) -> bool:
    """Whether ``flag`` was typed on the command line (as ``--flag V`` or ``--flag=V``)."""
    return any(a == flag or a.startswith(flag + "=") for a in getattr(args, "argv", ()))


def unused_options(args: argparse.Namespace) -> list[str]:
    """One note per option of ``args`` (a parsed, checked command line) that does nothing
    where it was given: the command goes on without it, and the note says so and why."""
    command, notes = getattr(args, "command", ""), []
    root = getattr(args, "data_root", None)
    if root and getattr(args, "source", None) == "embedded":
        notes.append(f"--data-root {root} is not read with --source embedded (its digits ship "
                     "with the package); give --source torchvision to read it")
    if command == "perf":
        if args.canvas is not None and args.input == "native":
            notes.append(f"--canvas {args.canvas} is not used under --input native (each image "
                         "reaches the model at its own size); give --input pad or upsample")
        if args.allocator is None and (args.rounds != 1 or _given(args, "--rounds")):
            notes.append(f"--rounds {args.rounds} is only read with --allocator (fresh "
                         "processes per measurement); measuring once, in this process")
    if command == "equivariance" and args.checkpoint and (
            _given(args, "--init-seeds") or _given(args, "--paper")):
        flag = "--init-seeds" if _given(args, "--init-seeds") else "--paper's --init-seeds"
        notes.append(f"{flag} is for fresh models; the --checkpoint models keep their "
                     "trained weights")
    if command in ("run", "reproduce"):
        notes += _unused_sweep_options(args)
    if command == "report" and _given(args, "--perf") and not _is_file(args.perf):
        notes.append(f"--perf {args.perf} does not exist; the report has no training-cost "
                     f"figure (`bench perf --out {args.perf}` measures it)")
    return notes


def _unused_sweep_options(args: argparse.Namespace) -> list[str]:
    notes = []
    if getattr(args, "rerun", False) and not getattr(args, "retry_failed", True):
        notes.append("--no-retry-failed does nothing with --rerun, which recomputes every "
                     "selected run, failed ones included")
    if getattr(args, "deterministic", True) is False and args.launcher == "local":
        from scaleqbench.bench.run.devices import resolve_device  # torch: only here

        if resolve_device(args.device).type == "cpu":
            notes.append("--no-deterministic only changes GPU kernels; these runs compute on "
                         "the CPU, whose kernels are deterministic anyway")
    return notes


def _is_file(path: str | None) -> bool:
    from pathlib import Path

    return bool(path) and Path(path).is_file()


def note_unused_options(args: argparse.Namespace) -> None:
    """Print :func:`unused_options`' notes on stderr, one line each."""
    for text in unused_options(args):
        print(f"bench: note: {text}", file=sys.stderr)
