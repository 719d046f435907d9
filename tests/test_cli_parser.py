"""The bench CLI's parser: launcher and Slurm flags agree, help and list import no backend, a
reader that stops early ends a command quietly, and ``bench equivariance``'s options (its
defaults a quick look, ``--paper`` the full study).
"""

from __future__ import annotations

import pytest

from scaleqbench.bench.cli import main as cli

# out: a fixture, found by pytest under this name
from cli_support import out, run_cli


def test_launcher_group_and_slurm_flags_agree():
    """commands reads SLURM_FLAGS from the parsed arguments: every Slurm option the parser
    defines must be in it (a flag missing there would be silently ignored)."""
    from scaleqbench.bench.cli.options import SLURM_FLAGS

    run = cli.build_parser()._subparsers._group_actions[0].choices["run"]
    [group] = [g for g in run._action_groups if g.title.startswith("launcher")]
    dests = {a.dest for a in group._group_actions}
    assert dests == {*SLURM_FLAGS, "launcher", "launcher_config", "detach", "sbatch_extra"}


def test_every_single_value_slurm_option_is_a_flag():
    """SlurmConfig is the one list of the cluster options: each of its single-value fields is
    a flag of ``bench run`` (generated from the field, its type included), and only its lists
    (``setup``, ``sbatch_extra``, read from a config file) are not."""
    import dataclasses
    import typing

    from scaleqbench.bench.cli.options import SLURM_FLAGS
    from scaleqbench.bench.launch.slurm_config import SlurmConfig

    hints = typing.get_type_hints(SlurmConfig)
    single = {f.name for f in dataclasses.fields(SlurmConfig)
              if typing.get_origin(hints[f.name]) is not tuple}
    assert set(SLURM_FLAGS) == single and {"partition", "time", "python"} <= single
    parser = cli.build_parser()
    for name in single:
        value = 3 if hints[name] is int else "x"
        args = parser.parse_args(["run", "--" + name.replace("_", "-"), str(value)])
        assert getattr(args, name) == value


def _modules_after(argv: list[str], names: tuple[str, ...]) -> set[str]:
    """Which of ``names`` a fresh interpreter has imported after ``bench ARGV``."""
    import subprocess
    import sys

    code = ("import sys\nfrom scaleqbench.bench.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', *[m for m in {names!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         check=True).stdout
    last = out.strip().splitlines()[-1].split()
    assert last[0] == "LOADED", out
    return set(last[1:])


@pytest.mark.parametrize("argv, absent", [
    (["--help"], ("submitit", "torch")),
    (["run", "--help"], ("submitit", "torch")),
    (["list", "methods"], ("submitit",)),
    (["list", "presets"], ("submitit",)),
])
def test_help_and_list_import_no_backend(argv, absent):
    """``bench --help`` builds the parser without torch or submitit; ``bench list`` loads
    no launcher backend (submitit is imported only to submit to Slurm). argparse, which every
    run imports, shows that the probe sees what was imported."""
    assert _modules_after(argv, (*absent, "argparse")) == {"argparse"}


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """``bench list methods | head -1``: the reader closes the pipe after one line; bench
    ends with SIGPIPE's status (141) and no traceback. The pipe is closed before bench
    writes anything, so the outcome does not depend on timing."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    proc = subprocess.run([sys.executable, "-m", "scaleqbench.bench.cli.main", "list", "methods"],
                          stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


# --- bench equivariance: its defaults are a quick look, --paper the full study -------------------

def _equivariance_parser():
    import argparse

    from scaleqbench.bench.cli.parser import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["equivariance"]


def test_every_equivariance_option_shows_its_default_in_help():
    import argparse

    for action in _equivariance_parser()._actions:
        if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction)) or \
                action.default is argparse.SUPPRESS:
            continue  # flags: off unless given
        assert action.help and "default" in action.help, action.option_strings
    text = _equivariance_parser().format_help()
    assert "(default: 64; --paper: 256)" in " ".join(text.split())
    assert "(default: 0-1; --paper: 0-4)" in " ".join(text.split())


@pytest.mark.parametrize("argv, expected", [
    ([], {"config": "quick", "init_seeds": "0-1", "images": 64}),
    (["--paper"], {"config": None, "init_seeds": "0-4", "images": 256}),
    (["--paper", "--images", "32", "--config", "quick"],
     {"config": "quick", "init_seeds": "0-4", "images": 32}),
    (["--init-seeds", "3"], {"config": "quick", "init_seeds": "3", "images": 64}),
])
def test_the_study_fills_only_what_was_not_given(argv, expected):
    from scaleqbench.bench.cli.cmd_equivariance import resolve_study
    from scaleqbench.bench.cli.parser import build_parser

    args = build_parser().parse_args(["equivariance", *argv])
    said = resolve_study(args)
    assert {k: getattr(args, k) for k in expected} == expected
    assert said.startswith("full study" if "--paper" in argv else "quick look")


def test_equivariance_at_its_defaults_runs_the_quick_study(capsys, cache_dir):
    """The default study of one method: two initialisations on 64 images at the quick config
    (its time is measured with `time bench equivariance --methods cnn`, not asserted here: a
    test never races the machine)."""
    assert run_cli("equivariance", "--methods", "cnn") == 0
    text = capsys.readouterr().out
    assert "quick look: config quick, init seeds 0-1, 64 test images" in text
    assert "on 64 mnist-res test images" in text and "mean ± std over 2 initialisations" in text
