"""The ``bench`` argument parser: one small function per sub-command adds its options.

Errors of the parser are one line, like every other user error of ``bench``
(:class:`OneLineParser`). The module is light (no torch, no submitit): ``bench --help``
builds the parser and nothing else.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from scaleqbench.bench.cli.options import PERF_JSON, RUN_DEFAULTS, add_launcher_args
from scaleqbench.bench.errors import did_you_mean
from scaleqbench.bench.spec import INPUT_CHOICES, PRECISIONS, PRESETS

__all__ = ["DEFAULT_DATASET", "DEFAULT_SOURCE", "EQUIVARIANCE_STUDIES", "SUBCOMMANDS",
           "OneLineParser", "build_parser"]

DEFAULT_DATASET = "mnist-res"
DEFAULT_SOURCE = "embedded"
_DEVICE_HELP = "auto (CUDA when present), cpu, cuda:0, ..."
_QUIET_HELP = "no progress bars, fewer logs"
_STRICT_HELP = "fail when a record file cannot be read (default: warn and leave it out)"


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other user error of ``bench``: what was
    wrong, a "did you mean" for a misspelt choice, and where to look for help."""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}"
                                         f"{did_you_mean(value, action.choices)}; "
                                         f"choose from {choices}")

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(2, f"bench: error: {message} (see `{self.prog} --help`)\n")


def _add_data_args(p: argparse.ArgumentParser, seed: bool = True) -> None:
    p.add_argument("--source", default=DEFAULT_SOURCE, help="embedded (default) or torchvision")
    p.add_argument("--data-root", default=None,
                   help="folder of the torchvision / STL-10 data (default: none; the embedded "
                        "data needs none)")
    p.add_argument("--cache-dir", default=None,
                   help="dataset cache (default $SCALEQBENCH_CACHE or ~/.cache/scaleqbench)")
    if seed:
        p.add_argument("--seed", type=int, default=0, help="dataset realization (default: 0)")


def _add_input_arg(p: argparse.ArgumentParser, default: str = "published") -> None:
    p.add_argument("--input", default=default, choices=list(INPUT_CHOICES),
                   help="how an image smaller than the canvas reaches a model: native (as it "
                        "is), pad (zero-padded, centred), upsample (fourier_resize to the "
                        "canvas), published (each method as its paper: fourier native, the "
                        f"others padded); default {default}")


def _add_training_args(p: argparse.ArgumentParser, limit_train_help: str) -> None:
    """What a sweep's runs are trained with, beyond the recipe: ``bench run`` and ``bench
    reproduce``."""
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--limit-train", type=int, default=None, help=limit_train_help)
    p.add_argument("--limit-eval", type=int, default=None, help="validate/test on a subset")
    p.add_argument("--recipe", default=None, metavar="KEY=VALUE,...",
                   help="override fields of every method's training recipe, e.g. "
                        "lr=0.01,batch_size=32 (fields: optimizer, lr, weight_decay, momentum, "
                        "nesterov, schedule, milestones, step_size, gamma, epochs, batch_size, "
                        "no_decay); part of the run's identity and its row label")
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)


def _add_numerics_args(p: argparse.ArgumentParser) -> None:
    """How a run's training steps compute on a GPU (docs/cli.md, "GPU runs")."""
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help="training arithmetic: fp32 (TF32 off; default), tf32 (CUDA TF32 "
                        "matmuls and convolutions) or bf16 (bfloat16 autocast); evaluation "
                        "and metrics are full precision; part of the run's protocol")
    p.add_argument("--deterministic", default=True, action=argparse.BooleanOptionalAction,
                   help="deterministic GPU kernels (default; recorded): --no-deterministic "
                        "lets cuDNN pick the fastest, run-to-run varying algorithms")


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    """What ``bench run`` and ``bench reproduce`` both take: resume, report, data, launcher."""
    p.add_argument("--no-retry-failed", dest="retry_failed", action="store_false",
                   help="keep failed records instead of re-running them")
    p.add_argument("--rerun", action="store_true",
                   help="recompute the selected runs even where they have a record (the old "
                        "record is moved to <out>/runs/stale/)")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip the report (tables, figures, index.html) in <out>/report")
    p.add_argument("--log", default=(), type=_logger_names, metavar="tensorboard,wandb",
                   help="also stream each run's epochs to TensorBoard (<out>/tensorboard) "
                        "and/or Weights & Biases (<out>/wandb); the epoch CSV "
                        "<out>/runs/<run-id>.epochs.csv is always written (default: none)")
    _add_data_args(p, seed=False)
    add_launcher_args(p)


def _logger_names(text: str) -> tuple[str, ...]:
    """``--log``'s value, checked (:func:`bench.run.loggers.parse_logger_names`)."""
    from scaleqbench.bench.run.loggers import parse_logger_names

    try:
        return parse_logger_names(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _list(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["methods", "datasets", "presets"])


def _data(p: argparse.ArgumentParser) -> None:
    dsub = p.add_subparsers(dest="data_command", required=True)
    b = dsub.add_parser("build", parents=[_quiet_parent()],
                        help="materialise a dataset and describe it")
    b.add_argument("dataset")
    _add_data_args(b)


def _run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, metavar="SWEEP.toml",
                   help="a sweep file (methods, datasets, seeds, preset, input, recipe, "
                        "launcher; docs/sweeps.md); flags given here override it")
    p.add_argument("--methods",
                   help="all (default), a comma list, wildcards ('s*'), timm:<name>, "
                        "NAME[k=v,...]")
    p.add_argument("--dataset", help=f"default {RUN_DEFAULTS['dataset']}")
    p.add_argument("--seeds", help="e.g. 0,1,2 or 0-5 (default 0)")
    p.add_argument("--preset", choices=list(PRESETS), help="default quick")
    _add_input_arg(p)
    p.add_argument("--out", default=None,
                   help="experiment folder (default results/<dataset>-<preset>)")
    _add_training_args(p, "train on a random subset")
    _add_numerics_args(p)
    _add_sweep_args(p)
    # unset unless given: a sweep file fills what the flags leave, then RUN_DEFAULTS
    p.set_defaults(**{k: None for k in RUN_DEFAULTS})


def _reproduce(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", nargs="?", help="the table (see --list)")
    p.add_argument("--list", action="store_true", help="list the tables and exit")
    p.add_argument("--methods", default=None, help="a subset of the table's methods (comma list)")
    p.add_argument("--seeds", default=None, help="override the table's seeds, e.g. 0-2")
    p.add_argument("--out", default=None,
                   help="experiment folder (default results/reproduce-<table>-<source>)")
    _add_training_args(p, "cap every column's training images (smoke tests; not the "
                          "published protocol)")
    _add_sweep_args(p)


def _status(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="the experiment folder (the --out of bench run)")


def _collect(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip the report in <experiment>/report")


def _leaderboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", nargs="+")
    p.add_argument("--out", default=None, help="also write leaderboard.md/.csv here")
    p.add_argument("--strict", action="store_true", help=_STRICT_HELP)


def _report(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", nargs="+")
    p.add_argument("--out", default=None,
                   help="report folder (default <folder>/report for one folder, else "
                        "results/report)")
    p.add_argument("--perf", default=PERF_JSON,
                   help="bench perf's JSON for the training-cost figure (used when it exists)")
    p.add_argument("--strict", action="store_true", help=_STRICT_HELP)


#: ``bench equivariance``'s study at its defaults (a few seconds to a minute per method on two
#: CPU cores) and under ``--paper`` (the full study: published widths, 5 initialisations, 256
#: images); ``config`` None is the dataset's published family. An explicit option wins.
EQUIVARIANCE_STUDIES = {
    "default": {"config": "quick", "init_seeds": "0-1", "images": 64},
    "paper": {"config": None, "init_seeds": "0-4", "images": 256},
}


def _study_default(option: str) -> str:
    quick, paper = (EQUIVARIANCE_STUDIES[k][option] for k in ("default", "paper"))
    return f"(default: {quick}; --paper: {paper or 'the dataset family, mnist or stl10'})"


def _equivariance(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default="all",
                   help="fresh models of these methods: all, a comma list, wildcards, "
                        "NAME[k=v,...] (default: all)")
    p.add_argument("--checkpoint", action="append", default=[], nargs="+", metavar="FILE",
                   help="checkpoint(s) written by bench run (repeatable); replace --methods; "
                        "the checkpoints of one method are aggregated as mean ± std "
                        "(default: none, fresh models)")
    p.add_argument("--each", action="store_true",
                   help="with --checkpoint: one row per file (e.g. per training epoch)")
    p.add_argument("--operator", default="ideal",
                   metavar="ideal,scale-shift,bicubic,lie,rahman-yeh",
                   help="equivariance operator(s), one table each (docs/architecture.md) "
                        "(default: ideal)")
    p.add_argument("--paper", action="store_true",
                   help="the full study: published widths (the dataset's config family), "
                        "--init-seeds 0-4 and --images 256 (minutes per method; the "
                        "default is a quick look)")
    p.add_argument("--dataset", default=DEFAULT_DATASET,
                   help=f"whose test images are measured (default: {DEFAULT_DATASET})")
    p.add_argument("--config", default=None,
                   help=f"method config of fresh models {_study_default('config')}")
    p.add_argument("--images", type=int, default=None,
                   help=f"test images the error is averaged over {_study_default('images')}")
    p.add_argument("--init-seeds", default=None,
                   help="fresh models: initialise with each of these seeds and report mean and "
                        "std over them (one random init is too noisy to rank methods) "
                        f"{_study_default('init_seeds')}")
    p.add_argument("--sizes", default=None,
                   help="target sizes, e.g. 8,16 or 8-12 (default: the dataset's grid)")
    p.add_argument("--input", default=None, choices=list(INPUT_CHOICES),
                   help="input policy of the logits' invariance error (features are always "
                        "measured native) (default: a checkpoint's own, else published)")
    p.add_argument("--device", default="auto", help=f"{_DEVICE_HELP} (default: auto)")
    _add_data_args(p)


def _perf(p: argparse.ArgumentParser) -> None:
    p.add_argument("--methods", default="all")
    p.add_argument("--sizes", default="8,16,28")
    p.add_argument("--batch", type=int, default=128)
    # six rounds: the fewest whose [min, max] holds the median with 95 % confidence
    p.add_argument("--repeats", type=int, default=6,
                   help="timed rounds; each median's interval is over them (default: 6)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--config", default="mnist")
    p.add_argument("--channels", type=int, default=1)
    _add_input_arg(p, default="native")
    p.add_argument("--canvas", type=int, default=None,
                   help="the canvas of --input pad/upsample (default: the largest --sizes)")
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    p.add_argument("--out", default=PERF_JSON)
    p.add_argument("--allocator", default=None, metavar="system,tuned",
                   help="measure in fresh processes with glibc's defaults (system, as a plain "
                        "script runs) and/or the CLI's allocator tuning (tuned), interleaved")
    p.add_argument("--rounds", type=int, default=1,
                   help="with --allocator: fresh processes per measurement (medians over them)")
    p.add_argument("--contention", action="store_true",
                   help="also time every step beside a busy neighbour process computing on as "
                        "many threads, and report the slowdown (busy / quiet step time)")


#: sub-command -> (its one-line help, the function that adds its options); the order of
#: ``bench --help``. Each NAME runs ``cmd_NAME`` of ``bench/cli/cmd_NAME.py``.
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "list": ("list methods, datasets or presets", _list),
    "data": ("dataset commands", _data),
    "run": ("train and evaluate a sweep, then print the leaderboard", _run),
    "reproduce": ("run a published table and set ours beside the paper's values", _reproduce),
    "status": ("per-run state of an experiment (queued, running, done, failed...)", _status),
    "collect": ("settle ended jobs and collate an experiment's leaderboard", _collect),
    "leaderboard": ("collate experiment folders into a leaderboard", _leaderboard),
    "report": ("tables (md/csv/tex), figures and index.html from experiment folders", _report),
    "equivariance": ("equivariance error of fresh or checkpointed models, no training",
                     _equivariance),
    "perf": ("training-step time, inference throughput, peak memory", _perf),
}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="bench", description="scaleqbench: benchmark "
                           "scale-equivariant image classifiers")
    parser.add_argument("--quiet", "-q", action="store_true", help=_QUIET_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (text, add_options) in SUBCOMMANDS.items():
        add_options(sub.add_parser(name, parents=[_quiet_parent()], help=text))
    return parser


def _quiet_parent() -> argparse.ArgumentParser:
    """The parent of every sub-command's parser: ``--quiet`` is accepted after the sub-command
    too (SUPPRESS keeps the top-level value when it is not given there)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help=_QUIET_HELP)
    return common
