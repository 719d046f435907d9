"""The CLI's short OpenMP spin (bench/run/openmp_wait.py): set before PyTorch loads, never over
a user's own setting, inherited by the processes the CLI starts, and kept away from the
processes that stand for someone else's (``bench perf``'s busy neighbour, its ``system`` runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaleqbench.bench.run import openmp_wait
from scaleqbench.bench.run.contention import BusyNeighbour
from scaleqbench.bench.run.openmp_wait import SPINCOUNT, plain_env, tune_openmp_waiting
from scaleqbench.bench.run.perf_isolated import _child_env

USER_KEYS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", openmp_wait._MARK)


@pytest.fixture
def clean_env(monkeypatch):
    for key in USER_KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_the_cli_setting_goes_into_the_environment(clean_env):
    # PyTorch is loaded in this process: the setting reaches only the processes started now
    assert tune_openmp_waiting() is False
    assert os.environ["GOMP_SPINCOUNT"] == SPINCOUNT == "1000"


@pytest.mark.parametrize("key,value", [("GOMP_SPINCOUNT", "50"), ("OMP_WAIT_POLICY", "active")])
def test_a_users_own_setting_wins(clean_env, key, value):
    clean_env.setenv(key, value)
    assert tune_openmp_waiting() is False
    assert os.environ[key] == value and set(USER_KEYS) - {key} & set(os.environ) == set()
    assert plain_env(os.environ)[key] == value  # and a plain process keeps it too


def test_a_plain_process_starts_without_the_cli_setting(clean_env):
    tune_openmp_waiting()
    env = plain_env(os.environ)
    assert "GOMP_SPINCOUNT" not in env and openmp_wait._MARK not in env
    assert "GOMP_SPINCOUNT" not in _child_env("system")  # bench perf --allocator system
    assert _child_env("tuned")["GOMP_SPINCOUNT"] == SPINCOUNT


def test_the_cli_sets_it_before_the_command_loads_torch(clean_env):
    """In a fresh interpreter, ``bench list methods``: the setting is made while PyTorch is
    not loaded yet, so GNU OpenMP reads it."""
    probe = ("import sys\n"
             "import scaleqbench.bench.cli.main as m\n"
             "real, seen = m.tune_openmp_waiting, []\n"
             "m.tune_openmp_waiting = lambda: seen.append(real())\n"
             "m.main(['list', 'methods'])\n"
             "print('TOOK EFFECT', seen, 'torch' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k not in USER_KEYS}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "TOOK EFFECT [True] True" in out


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc (Linux)")
def test_the_busy_neighbour_runs_with_openmps_default_waiting(clean_env):
    tune_openmp_waiting()
    with BusyNeighbour(1, size=8) as neighbour:
        env = Path(f"/proc/{neighbour.pid}/environ").read_bytes().split(b"\0")
    assert not any(e.startswith(b"GOMP_SPINCOUNT=") for e in env)
