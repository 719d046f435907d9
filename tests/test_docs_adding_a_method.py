"""docs/adding-a-method.md runs as written.

Its files are extracted into the plugin package it describes, which pip builds and
installs into a folder of its own (never into this environment). With that folder on
the path, the method loads through its entry point, the plugin's own tests pass, and
the page's ``bench`` commands run (in this process: each ``bench run`` cut to a tiny
budget, written under a temporary folder).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_support import installed

from scaleqbench import methods
from scaleqbench.bench.cli import main as cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-method.md"
# a file of the example: its path in bold code, a blank line, then its fenced block
FILE_BLOCK = re.compile(r"^\*\*`([^`]+)`\*\*\n\n```[a-z]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
TINY_RUN = ["--limit-train", "120", "--limit-eval", "60", "--epochs", "1", "--quiet",
            "--no-report"]
MODULES = ["mynet", "mynet.model", "mynet.training", "mynet_example_tests"]


def example_files() -> dict[str, str]:
    files = dict(FILE_BLOCK.findall(DOC.read_text()))
    assert {"pyproject.toml", "src/mynet/__init__.py", "src/mynet/model.py",
            "src/mynet/training.py", "tests/test_mynet.py"} <= set(files), sorted(files)
    return files


def example_commands() -> list[list[str]]:
    [block] = SHELL_BLOCK.findall(DOC.read_text())
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def records_in(folder: Path) -> list[dict]:
    """The run records written under ``folder`` (JSON objects with a status and a spec)."""
    found = [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))]
    return [r for r in found if isinstance(r, dict) and "status" in r and "spec" in r]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The example package written from the page, and the folder pip installed it into."""
    root = tmp_path_factory.mktemp("adding-a-method")
    package = root / "mynet-plugin"
    for rel, text in example_files().items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text)
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(package)],
                   check=True, capture_output=True, timeout=300)
    assert (site / "mynet" / "model.py").exists()
    return package, site


@pytest.fixture
def plugin(built, monkeypatch) -> Path:
    """The installed example on the path, loaded through its entry point; its package."""
    package, site = built
    with installed(monkeypatch, site, MODULES):
        yield package


def test_the_method_loads_through_its_entry_point(plugin):
    entry = methods.get_method("mynet")
    assert entry.source == "mynet-plugin 0.1.0"
    assert entry.builder.__module__ == "mynet"


def test_the_plugins_own_tests_pass(plugin):
    spec = importlib.util.spec_from_file_location("mynet_example_tests",
                                                  plugin / "tests" / "test_mynet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert len(tests) == 4
    for test in tests:
        test()


def test_the_pages_commands_run(plugin, tmp_path, cache_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    commands = example_commands()
    assert commands[0][:2] == ["pip", "install"]  # the fixture's, into a folder of its own
    runs = []
    for argv in commands[1:]:
        assert argv[0] == "bench", argv
        args = argv[1:] + (TINY_RUN if argv[1] == "run" else [])
        assert cli.main(args) == 0, argv
        out = capsys.readouterr().out
        if argv[1:3] == ["list", "methods"]:
            [row] = [line for line in out.splitlines() if line.startswith("| mynet ")]
            assert "mynet-plugin 0.1.0" in row and "scale-invariant" in row
        if argv[1] == "run":
            [record] = records_in(tmp_path / argv[argv.index("--out") + 1])
            assert record["status"] == "ok", argv
            runs.append((record["spec"]["method"], record["spec"]["method_kwargs"]))
    assert runs == [("mynet", {}), ("mynet", {"channels": [8, 8, 8]})]
