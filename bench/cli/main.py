"""The ``bench`` command line: list, data build, run, reproduce, status, collect, leaderboard,
report, equivariance, perf.

User errors (unknown names, bad lists, missing data, unwritable or locked
output folders, a full disk) print one line on stderr and exit non-zero; so do
argparse's own complaints (a misspelt choice gets a "did you mean", never the
usage block). Ctrl-C or SIGTERM during a sweep keeps the finished records and
says how to resume. ``--quiet`` also hides Python warnings (torch's UserWarnings).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from scaleqbench.bench.run.cpu_memory import tune_cpu_allocator
from scaleqbench.bench.errors import user_error_types
from scaleqbench.bench.cli.options import PERF_JSON, add_launcher_args
from scaleqbench.bench.spec import INPUT_CHOICES, PRESETS
from scaleqbench.bench.cli.validate import did_you_mean

DEFAULT_DATASET = "mnist-res"
DEFAULT_SOURCE = "embedded"


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other user error of ``bench``: what was
    wrong, a "did you mean" for a misspelt choice, and where to look for help."""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}"
                                         f"{did_you_mean(str(value), action.choices)}; "
                                         f"choose from {choices}")

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"bench: error: {message} (see `{self.prog} --help`)\n")


def _add_data_args(p: argparse.ArgumentParser, seed: bool = True) -> None:
    p.add_argument("--source", default=DEFAULT_SOURCE, help="embedded (default) or torchvision")
    p.add_argument("--data-root", default=None, help="folder of the torchvision / STL-10 data")
    p.add_argument("--cache-dir", default=None,
                   help="dataset cache (default $SCALEQBENCH_CACHE or ~/.cache/scaleqbench)")
    if seed:
        p.add_argument("--seed", type=int, default=0, help="dataset realization")


def _add_input_arg(p: argparse.ArgumentParser, default: str = "published") -> None:
    p.add_argument("--input", default=default, choices=list(INPUT_CHOICES),
                   help="how an image smaller than the canvas reaches a model: native (as it "
                        "is), pad (zero-padded, centred), upsample (fourier_resize to the "
                        "canvas), published (each method as its paper: fourier native, the "
                        f"others padded); default {default}")


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    """What ``bench run`` and ``bench reproduce`` both take: resume, report, data, launcher."""
    p.add_argument("--no-retry-failed", dest="retry_failed", action="store_false",
                   help="keep failed records instead of re-running them")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip the report (tables, figures, index.html) in <out>/report")
    _add_data_args(p, seed=False)
    add_launcher_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="bench", description="scaleqbench: benchmark "
                           "scale-equivariant image classifiers")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars, fewer logs")
    # --quiet is accepted after the sub-command too; SUPPRESS keeps the top-level value otherwise
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars, fewer logs")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)

    p = add("list", help="list methods, datasets or presets")
    p.add_argument("what", choices=["methods", "datasets", "presets"])

    p = add("data", help="dataset commands")
    dsub = p.add_subparsers(dest="data_command", required=True)
    b = dsub.add_parser("build", parents=[common], help="materialise a dataset and describe it")
    b.add_argument("dataset")
    _add_data_args(b)

    p = add("run", help="train and evaluate a sweep, then print the leaderboard")
    p.add_argument("--methods", default="all",
                   help="all, a comma list, wildcards ('s*'), timm:<name>, NAME[k=v,...]")
    p.add_argument("--dataset", default=DEFAULT_DATASET)
    p.add_argument("--seeds", default="0", help="e.g. 0,1,2 or 0-5")
    p.add_argument("--preset", default="quick", choices=list(PRESETS))
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    _add_input_arg(p)
    p.add_argument("--out", default=None, help="experiment folder (default results/<dataset>-<preset>)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:0, ...")
    p.add_argument("--limit-train", type=int, default=None, help="train on a random subset")
    p.add_argument("--limit-eval", type=int, default=None, help="validate/test on a subset")
    _add_sweep_args(p)

    p = add("reproduce", help="run a published table and set ours beside the paper's values")
    p.add_argument("table", nargs="?", help="the table (see --list)")
    p.add_argument("--list", action="store_true", help="list the tables and exit")
    p.add_argument("--methods", default=None, help="a subset of the table's methods (comma list)")
    p.add_argument("--seeds", default=None, help="override the table's seeds, e.g. 0-2")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--limit-train", type=int, default=None,
                   help="cap every column's training images (smoke tests; not the published "
                        "protocol)")
    p.add_argument("--limit-eval", type=int, default=None, help="validate/test on a subset")
    p.add_argument("--out", default=None,
                   help="experiment folder (default results/reproduce-<table>-<source>)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:0, ...")
    _add_sweep_args(p)

    p = add("status", help="per-run state of an experiment (queued, running, done, failed...)")
    p.add_argument("experiment", help="the experiment folder (the --out of bench run)")

    p = add("collect", help="settle ended jobs and collate an experiment's leaderboard")
    p.add_argument("experiment")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip the report in <experiment>/report")

    p = add("leaderboard", help="collate experiment folders into a leaderboard")
    p.add_argument("folders", nargs="+")
    p.add_argument("--out", default=None, help="also write leaderboard.md/.csv here")
    p.add_argument("--strict", action="store_true",
                   help="fail when a record file cannot be read (default: warn and leave it out)")

    p = add("report", help="tables (md/csv/tex), figures and index.html from experiment folders")
    p.add_argument("folders", nargs="+")
    p.add_argument("--out", default=None,
                   help="report folder (default <folder>/report for one folder, else "
                        "results/report)")
    p.add_argument("--perf", default=PERF_JSON,
                   help="bench perf's JSON for the training-cost figure (used when it exists)")
    p.add_argument("--strict", action="store_true",
                   help="fail when a record file cannot be read (default: warn and leave it out)")

    p = add("equivariance",
                       help="equivariance error of fresh or checkpointed models, no training")
    p.add_argument("--methods", default="all")
    p.add_argument("--checkpoint", action="append", default=[], nargs="+", metavar="FILE",
                   help="checkpoint(s) written by bench run (repeatable); replace --methods; "
                        "the checkpoints of one method are aggregated as mean ± std")
    p.add_argument("--each", action="store_true",
                   help="with --checkpoint: one row per file (e.g. per training epoch)")
    p.add_argument("--operator", default="ideal", metavar="ideal,scale-shift,bicubic,lie",
                   help="equivariance operator(s), one table each (README: Metrics)")
    p.add_argument("--dataset", default=DEFAULT_DATASET)
    p.add_argument("--config", default=None, help="method config (default: the dataset's family)")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--init-seeds", default="0-4",
                   help="fresh models: initialise with each of these seeds and report mean and "
                        "std over them (one random init is too noisy to rank methods)")
    p.add_argument("--sizes", default=None, help="target sizes (default: the dataset's grid)")
    p.add_argument("--input", default=None, choices=list(INPUT_CHOICES),
                   help="input policy of the logits' invariance error (features are always "
                        "measured native); default: a checkpoint's own, else published")
    p.add_argument("--device", default="auto")
    _add_data_args(p)

    p = add("perf", help="training-step time, inference throughput, peak memory")
    p.add_argument("--methods", default="all")
    p.add_argument("--sizes", default="8,16,28")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--config", default="mnist")
    p.add_argument("--channels", type=int, default=1)
    _add_input_arg(p, default="native")
    p.add_argument("--canvas", type=int, default=None,
                   help="the canvas of --input pad/upsample (default: the largest --sizes)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=PERF_JSON)
    p.add_argument("--allocator", default=None, metavar="system,tuned",
                   help="measure in fresh processes with glibc's defaults (system, as a plain "
                        "script runs) and/or the CLI's allocator tuning (tuned), interleaved")
    p.add_argument("--rounds", type=int, default=1,
                   help="with --allocator: fresh processes per measurement (medians over them)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    # imported after parsing: the commands load torch and pandas, which `bench --help` never
    # needs; every sub-command NAME is the function cmd_NAME of the module cli/cmd_NAME.py
    module = importlib.import_module(f"scaleqbench.bench.cli.cmd_{args.command}")
    handler = getattr(module, f"cmd_{args.command}")

    tune_cpu_allocator()  # the CLI opts in; importing the library never tunes the process
    try:
        with warnings.catch_warnings():
            if args.quiet:  # torch's UserWarnings are for developers, not a quiet sweep
                warnings.simplefilter("ignore")
            return handler(args) or 0
    except user_error_types() as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt as exc:  # outside a sweep (which says how to resume): no traceback
        from scaleqbench.bench.cli.signals import exit_status

        print("\nbench: interrupted", file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
