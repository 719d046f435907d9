"""``bench`` run in this process and an experiment folder, for the CLI tests."""

from __future__ import annotations

import pytest

from scaleqbench.bench.cli import main as cli


def run_cli(*argv: str) -> int:
    return cli.main(list(argv))


@pytest.fixture()
def out(tmp_path, cache_dir):
    return tmp_path / "exp"
