"""How scaleqbench installs: one namespace that squats no other package's name, package data
that travels with a non-editable install, and an import that leaves the process alone."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from allocator_probe import FREE_64MB_AND_MEASURE, has_mallinfo2

ROOT = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("bench", "methods", "datasets")


def _python(code: str, *args: str, env: dict[str, str] | None = None, flags: tuple = (),
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, *flags, "-c", code, *args], capture_output=True,
                          text=True, env=environ, cwd=cwd or ROOT, timeout=600)


def test_every_package_folder_is_installed_under_the_namespace():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"] == {f"scaleqbench.{f}": f for f in CODE_FOLDERS}
    found = {"scaleqbench." + ".".join(p.parent.relative_to(ROOT).parts)
             for f in CODE_FOLDERS for p in (ROOT / f).rglob("__init__.py")}
    assert set(cfg["packages"]) == found  # a new sub-package folder must be listed, or a wheel drops it


STAND_IN = '''
import sys
sys.path.insert(0, sys.argv[1])
import datasets  # the stand-in: a package of that name first on the path, as HF datasets would be
assert datasets.STAND_IN
from scaleqbench.bench.cli.main import main
rc = main(["run", "--methods", "cnn", "--out", sys.argv[2], "--limit-train", "64",
           "--limit-eval", "32", "--epochs", "1", "--quiet", "--no-report"])
import datasets as again
assert again is datasets and again.STAND_IN and "SourceError" not in dir(again)
print("stand-in intact, rc", rc)
sys.exit(rc)
'''


def test_a_stand_in_datasets_package_on_the_path_breaks_nothing(tmp_path, cache_dir):
    (tmp_path / "shadow" / "datasets").mkdir(parents=True)
    (tmp_path / "shadow" / "datasets" / "__init__.py").write_text("STAND_IN = True\n")
    res = _python(STAND_IN, str(tmp_path / "shadow"), str(tmp_path / "exp"),
                  env={"SCALEQBENCH_CACHE": str(cache_dir)}, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "stand-in intact, rc 0" in res.stdout
    assert list((tmp_path / "exp" / "runs").glob("*.json"))


ALLOCATOR_PROBE = '''
import os
import scaleqbench.bench, scaleqbench.bench.run.metrics, scaleqbench.bench.cli.main, scaleqbench.methods
import scaleqbench.datasets, torch
''' + FREE_64MB_AND_MEASURE + '''
print(os.environ.get("THP_MEM_ALLOC_ENABLE", "unset"), kept_mb)
'''


@pytest.mark.skipif(not has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_importing_the_library_leaves_the_allocator_and_environment_alone():
    env = {k: v for k, v in os.environ.items()
           if k not in ("THP_MEM_ALLOC_ENABLE", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_",
                        "GLIBC_TUNABLES", "SCALEQBENCH_SYSTEM_MALLOC")}
    res = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE], capture_output=True,
                         text=True, env=env, timeout=300, check=True)
    thp, kept_mb = res.stdout.split()
    assert thp == "unset"
    assert int(kept_mb) < 64  # glibc's default: the freed 64 MB block went back to the OS


WHEEL_PROBE = '''
import sys
import scaleqbench.bench
assert scaleqbench.bench.__file__.startswith(sys.argv[1]), scaleqbench.bench.__file__
from scaleqbench.bench.report.data import load_published
from scaleqbench.methods import list_methods
pub = load_published()
assert len(pub) > 0 and {"cnn", "sesn", "dss"} <= set(pub.method)
assert "fourier" in list_methods()
print("published rows", len(pub))
'''


def test_a_non_editable_install_carries_the_published_numbers(tmp_path):
    """``pip install .`` (not editable): the code and its package data come from the install,
    not from this source tree; ``-S`` keeps the editable install's finder out of the way."""
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          "--target", str(target), str(ROOT)], capture_output=True, text=True,
                         timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    deps = sysconfig.get_paths()["purelib"]
    res = _python(WHEEL_PROBE, str(target), flags=("-S",), cwd=tmp_path,
                  env={"PYTHONPATH": os.pathsep.join([str(target), deps])})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "published rows" in res.stdout
    entry_points = next(target.glob("scaleqbench-*.dist-info")) / "entry_points.txt"
    assert "bench = scaleqbench.bench.cli.main:main" in entry_points.read_text()
    assert not (target / "datasets").exists() and not (target / "bench").exists()
