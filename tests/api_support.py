"""A real experiment folder for the library API tests, made once per module by ``bench run``,
and the path of one of its records."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaleqbench.bench.cli.main import main


ROOT = Path(__file__).resolve().parents[1]


TINY_RUN = ["run", "--methods", "cnn", "--limit-train", "40", "--limit-eval", "20",
            "--epochs", "1", "--quiet", "--no-report"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, cache_dir) -> Path:
    """An experiment folder with one finished ``cnn`` run (record and checkpoint)."""
    out = tmp_path_factory.mktemp("api") / "exp"
    assert main([*TINY_RUN, "--out", str(out)]) == 0
    return out


def _record_file(folder: Path) -> Path:
    [path] = sorted((folder / "runs").glob("*.json"))
    return path
