"""The launcher interface: the parser offers every registered launcher, a sweep names its
launchers, options of another launcher are refused, and a third backend is one class.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from functools import partial
from dataclasses import dataclass

import pytest

from scaleqbench.bench.cli import main as cli
from scaleqbench.bench.cli.cmd_run import cmd_run
from scaleqbench.bench.cli.cmd_status import cmd_status
from scaleqbench.bench.errors import BadArgumentError, UnknownNameError
from scaleqbench.bench.launch.api import RunState, Submission
from scaleqbench.bench.launch.registry import LAUNCHERS, make_launcher
from scaleqbench.bench.launch.local import LocalLauncher
from scaleqbench.bench.launch.sweep import sweep_status
from scaleqbench.bench.launch.slurm import SlurmLauncher
from scaleqbench.bench.launch.sweep import load_sweep, save_sweep, sweep_launchers

from launcher_support import FakeSlurm, launcher, spec


def test_the_parser_offers_every_launcher_without_loading_torch():
    """``--launcher`` choices come from LAUNCHERS, and building the parser (``bench --help``)
    still loads no torch: the launchers import their job only to submit it."""
    code = ("import sys; from scaleqbench.bench.cli import main as cli; "
            "run = cli.build_parser()._subparsers._group_actions[0].choices['run']; "
            "[a] = [a for a in run._actions if a.dest == 'launcher']; "
            "print(','.join(a.choices), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == [",".join(LAUNCHERS), "False"]


def test_sweep_json_names_its_launchers(tmp_path):
    a, b = spec(0), spec(1)
    save_sweep(tmp_path, [a], launcher="local")
    save_sweep(tmp_path, [b], launcher="slurm")
    save_sweep(tmp_path, [a], launcher="local")
    assert sweep_launchers(tmp_path) == ["local", "slurm"]
    assert [s.run_id for s in load_sweep(tmp_path)] == [a.run_id, b.run_id]


def test_a_sweep_from_before_the_launcher_list_asks_every_launcher(tmp_path, monkeypatch):
    fake, a = FakeSlurm(), spec(0)
    monkeypatch.setitem(LAUNCHERS, "slurm", partial(SlurmLauncher, scheduler=fake))
    launcher(fake).submit([a], tmp_path)  # launched by a bench that did not name launchers
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": [a.to_json()]}))
    fake.jobs["100_0"] = "RUNNING"
    save_sweep(tmp_path, [spec(1)], launcher="local")
    assert sweep_launchers(tmp_path) is None  # who launched run a is unknown: ask them all
    assert [r["state"] for r in sweep_status(tmp_path)] == ["running", "not submitted"]


@pytest.mark.parametrize("name, options, message", [
    ("local", {"partition": "gpu", "detach": True},
     "--partition, --detach only apply to --launcher slurm"),
    ("local", {"cpus_per_job": 0}, "--cpus-per-job only apply to --launcher slurm"),
])
def test_options_of_another_launcher_are_refused(name, options, message):
    with pytest.raises(BadArgumentError, match=message):
        make_launcher(name, options)


def test_unknown_launcher_name():
    with pytest.raises(UnknownNameError, match="known: local, slurm"):
        make_launcher("pbs", {})


def test_local_launcher_takes_no_option():
    assert make_launcher("local", {"partition": None, "detach": False, "sbatch_extra": []},
                         progress=False) == LocalLauncher(progress=False)


@dataclass(frozen=True)
class ThirdLauncher:
    """A backend the registry does not ship: one class is all ``bench run`` needs."""

    name = "third"
    accepts = frozenset({"detach"})
    interrupt_hint = "the third backend keeps its jobs"

    @classmethod
    def from_options(cls, options, progress):
        return cls()

    def submit(self, specs, out_dir, command=None):
        THIRD_CALLS.append(("submit", [s.run_id for s in specs], command))
        return Submission(tuple(specs), {s.run_id: f"t{i}" for i, s in enumerate(specs)},
                          f"handed {len(specs)} run(s) to the third backend")

    def follow(self, submission, out_dir):
        raise AssertionError("--detach does not follow")

    def states(self, out_dir, specs):  # it knows the runs it was handed
        handed = {rid for call in THIRD_CALLS for rid in call[1]}
        return {s.run_id: RunState(job="t", state="queued", detail="waiting")
                for s in specs if s.run_id in handed}

    def settle(self, out_dir, specs):
        return 0


THIRD_CALLS: list = []


def test_a_third_backend_is_one_class(tmp_path, cache_dir, monkeypatch, capsys):
    monkeypatch.setitem(LAUNCHERS, "third", ThirdLauncher)
    THIRD_CALLS.clear()
    out = tmp_path / "exp"
    argv = ["run", "--methods", "cnn", "--seeds", "0,1", "--out", str(out), "--epochs", "1",
            "--limit-train", "40", "--limit-eval", "20", "--quiet", "--detach",
            "--launcher", "third"]  # --launcher offers every registered launcher
    args = cli.build_parser().parse_args(argv)
    args.argv = argv
    assert cmd_run(args) == 0
    assert "handed 2 run(s) to the third backend" in capsys.readouterr().out
    assert THIRD_CALLS[0][0] == "submit" and len(THIRD_CALLS[0][1]) == 2
    assert sweep_launchers(out) == ["third"]
    assert cmd_run(args) == 0  # its runs are still queued there: none resubmitted
    assert "2 still queued or running, 0 to run" in capsys.readouterr().out
    assert cmd_status(argparse.Namespace(experiment=str(out))) == 0
    assert "2 queued" in capsys.readouterr().out
