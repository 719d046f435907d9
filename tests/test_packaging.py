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

# the other project of the name on the package index ships a `scalebench` package with modules
# of its own; both must install into one environment and both must import
OTHER_SCALEBENCH = {"scalebench/__init__.py": "__version__ = '0.1.4'\n",
                    "scalebench/cli.py": "def main():\n    return 'the other scalebench'\n"}

BESIDE_PROBE = '''
import sys
import scalebench, scalebench.cli
assert scalebench.__file__.startswith(sys.argv[1]) and scalebench.cli.main() == "the other scalebench"
import scaleqbench.bench
from scaleqbench.bench.cli.main import main
assert scaleqbench.bench.__version__ not in ("", "unknown"), scaleqbench.bench.__version__
sys.exit(main(["list", "presets"]))
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``pip install .`` (not editable) into a folder, beside a package named ``scalebench``
    that has a module of its own (installed there first)."""
    target = tmp_path_factory.mktemp("site")
    for name, text in OTHER_SCALEBENCH.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(text)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          "--target", str(target), str(ROOT)], capture_output=True, text=True,
                         timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return target


def _probe(code: str, target: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``-S`` keeps the editable install's finder out of the way; the dependencies come from
    this environment's site-packages, after the install folder."""
    deps = sysconfig.get_paths()["purelib"]
    return _python(code, str(target), flags=("-S",), cwd=cwd,
                   env={"PYTHONPATH": os.pathsep.join([str(target), deps])})


def test_a_non_editable_install_carries_the_published_numbers(installed, tmp_path):
    """The code and its package data come from the install, not from this source tree."""
    res = _probe(WHEEL_PROBE, installed, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "published rows" in res.stdout
    dist_info = next(installed.glob("scaleqbench-*.dist-info"))
    assert "bench = scaleqbench.bench.cli.main:main" in (dist_info / "entry_points.txt").read_text()
    assert not (installed / "datasets").exists() and not (installed / "bench").exists()


def test_it_installs_beside_the_other_scalebench_and_both_work(installed, tmp_path):
    res = _probe(BESIDE_PROBE, installed, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "quick" in res.stdout  # `bench list presets` printed its table
    assert (installed / "scalebench" / "cli.py").read_text() == OTHER_SCALEBENCH["scalebench/cli.py"]


def test_the_wheel_ships_the_license_and_the_citation(installed):
    dist_info = next(installed.glob("scaleqbench-*.dist-info"))
    shipped = {p.name for p in dist_info.rglob("*") if p.is_file()}
    assert {"LICENSE", "CITATION.cff"} <= shipped, sorted(shipped)
    assert "MIT License" in next(dist_info.rglob("LICENSE")).read_text()
