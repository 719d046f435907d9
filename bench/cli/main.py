"""The ``bench`` command line: parse (:mod:`bench.cli.parser`), then run the sub-command's
``cmd_<name>`` (list, data build, run, reproduce, status, collect, leaderboard, report,
equivariance, perf).

User errors (unknown names, bad lists, missing data, unwritable or locked
output folders, a full disk) print one line on stderr and exit non-zero; so do
argparse's own complaints (a misspelt choice gets a "did you mean", never the
usage block). Ctrl-C or SIGTERM during a sweep keeps the finished records and
says how to resume. ``--quiet`` also hides Python warnings (torch's UserWarnings).
Output piped into a reader that stops early (``bench status X | head -1``) ends the
command quietly with the shell's status for SIGPIPE (141), as other command-line tools do.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

from scaleqbench.bench.cli.parser import build_parser
from scaleqbench.bench.errors import user_error_types
from scaleqbench.bench.run.cpu_memory import tune_cpu_allocator
from scaleqbench.bench.run.openmp_wait import tune_openmp_waiting

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    # before the command loads torch, which reads it (see bench.run.openmp_wait)
    tune_openmp_waiting()
    # imported after parsing: the commands load torch and pandas, which `bench --help` never
    # needs; every sub-command NAME is the function cmd_NAME of the module cli/cmd_NAME.py
    module = importlib.import_module(f"scaleqbench.bench.cli.cmd_{args.command}")
    handler = getattr(module, f"cmd_{args.command}")

    tune_cpu_allocator()  # the CLI opts in; importing the library never tunes the process
    try:
        with warnings.catch_warnings():
            if args.quiet:  # torch's UserWarnings are for developers, not a quiet sweep
                warnings.simplefilter("ignore")
            status = handler(args) or 0
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return status
    except BrokenPipeError:
        return _reader_went_away()
    except user_error_types() as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt as exc:  # outside a sweep (which says how to resume): no traceback
        from scaleqbench.bench.cli.signals import exit_status

        print("\nbench: interrupted", file=sys.stderr)
        return exit_status(exc)


def _reader_went_away() -> int:
    """The reader of stdout closed it: nothing more can be shown. Point stdout at /dev/null so
    that the interpreter's final flush does not fail too, and exit as SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (captured): nothing to redirect
        pass
    finally:
        os.close(devnull)
    return 141


if __name__ == "__main__":
    sys.exit(main())
