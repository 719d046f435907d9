"""How long the CLI's idle OpenMP threads spin before they sleep: briefly.

PyTorch's CPU operations (and the Fourier network's kernels, which run on the same team) fork
and join a team of OpenMP threads. After each join, GNU OpenMP keeps the team's threads
spinning for a while (300,000 rounds by default) so that the next operation starts without
a wake-up. On idle cores that costs nothing; beside another busy process it does: the
spinning threads hold cores that the threads still computing -- ours or the neighbour's --
wait for, and every join waits for whichever thread the scheduler has just preempted.
Measured on the 2-core reference machine beside a busy 2-thread neighbour
(``bench perf --contention``), a short spin (``GOMP_SPINCOUNT=1000``) left the quiet step
times of ``fourier`` and ``cnn`` as they were and took their slowdown from 2.3-2.4x and
2.5-3.2x to about 2.0x and 2.2x (``docs/cli.md``).

GNU OpenMP reads the setting when PyTorch loads it, so it must be in the environment before
``import torch``: the CLI sets it first thing (:func:`tune_openmp_waiting`), and the
processes it starts (jobs, Slurm jobs) inherit it. Importing the library never sets it; a
training script of one's own gets the same by starting with ``GOMP_SPINCOUNT=1000`` in its
environment. A user's own ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

__all__ = ["SPINCOUNT", "plain_env", "tune_openmp_waiting"]

#: the CLI's spin before an idle OpenMP thread sleeps (GNU OpenMP's default: 300,000)
SPINCOUNT = "1000"
_USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
#: marks a GOMP_SPINCOUNT as the CLI's (so that a plain child process can be started without it)
_MARK = "SCALEQBENCH_OPENMP_SPIN"


def tune_openmp_waiting() -> bool:
    """Set the short spin unless the user chose (module docstring); ``True`` when it takes
    effect in this process too (PyTorch not loaded yet). Children inherit it either way."""
    if any(k in os.environ for k in _USER_SETTINGS):
        return False
    os.environ["GOMP_SPINCOUNT"] = SPINCOUNT
    os.environ[_MARK] = SPINCOUNT
    return "torch" not in sys.modules


def plain_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the CLI's OpenMP setting (a user's own is kept): how a process that
    the CLI did not tune starts (``bench perf``'s busy neighbour, its ``system`` runs)."""
    out = dict(env)
    if out.pop(_MARK, None) is not None and out.get("GOMP_SPINCOUNT") == SPINCOUNT:
        del out["GOMP_SPINCOUNT"]
    return out
