"""Totals of the robustness sweeps: ``python tests/robustness_totals.py``.

Runs tests/test_bad_inputs.py, the tests/test_faults*.py modules and the third sweep's
tests/test_bad_inputs_sweep3*.py (the default suite runs them too) and counts, from
pytest's JUnit report:

* bad inputs: how many got a clean one-line error (their case passed), out of all;
* faults: how many kept every finished record (none failed saying ``RECORD LOST``)
  and how many hung (failed by pytest-timeout), out of all, with the faults that
  failed otherwise listed;
* the third sweep: cases tried (every test of its two modules), refused cleanly
  (``test_refused`` cases that passed), options noted (``test_an_option_that_does_nothing``
  cases that passed), faults survived (tests of the faults module that passed), and the
  bugs it found and fixed (:data:`SWEEP3_FIXED`, each pinned by one of those tests).

Exit status 0 only for 100 % clean errors, 0 records lost, 0 hangs and no failed case.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("tests/test_bad_inputs.py", "tests/test_faults.py", "tests/test_faults_files.py",
           "tests/test_faults_slurm.py", "tests/test_bad_inputs_sweep3.py",
           "tests/test_bad_inputs_sweep3_faults.py")

#: what the third sweep found wrong, each fixed and pinned by a test of its modules
SWEEP3_FIXED = (
    "a refused MNIST download left MNIST/raw/ (and a missing --data-root) behind",
    "bench run built one dataset cache per seed before taking the lock",
    "a read-only runs/ lost the trained record after training and left .bench.lock",
    "checkpoints/, .locks/ or a lock file in the way were found only after training",
    "options that do nothing (--data-root with embedded data, --canvas under native, "
    "--rounds without --allocator, ...) were dropped without a note",
    "bench equivariance --checkpoint of an unreadable file built and cached the dataset first",
    "a dataset cache stamp of non-UTF-8 bytes failed the run instead of a rebuild",
    "leaderboard/report --out '' silently wrote to the default place; perf --out '' was "
    "called a folder",
    "--out naming a broken link said 'File exists'",
)


def _cases(report: Path) -> list[tuple[str, str, str]]:
    """(module, test name, outcome text: '' when passed) per test case."""
    out = []
    for case in ET.parse(report).iter("testcase"):
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        skipped = case.find("skipped") is not None
        text = "skipped" if skipped else ("" if bad is None else
                                          (bad.get("message") or "") + (bad.text or ""))
        out.append((case.get("classname", ""), case.get("name", ""), text))
    return out


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="robust-totals-") as tmp:
        report = Path(tmp) / "report.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={report}", *MODULES], cwd=ROOT, check=False)
        cases = _cases(report)
    inputs = [c for c in cases if c[0].endswith("test_bad_inputs") and
              c[1].startswith("test_bad_input[")]
    faults = [c for c in cases if c[0].rpartition(".")[2].startswith("test_faults")]
    clean = sum(not text for *_, text in inputs)
    lost = [name for _, name, text in faults if "RECORD LOST" in text]
    hangs = [name for _, name, text in faults if "Timeout" in text]
    other = [name for _, name, text in faults if text and name not in lost + hangs]
    print(f"\nbad inputs: {clean}/{len(inputs)} clean one-line errors "
          f"({100 * clean / max(len(inputs), 1):.0f} %)")
    print(f"faults: {len(faults)} injected, records lost in {len(lost)}, hangs {len(hangs)}"
          + (f", other failures {len(other)}: {', '.join(other)}" if other else ""))
    for name in lost + hangs:
        print(f"  {name}")
    third = [c for c in cases if "sweep3" in c[0]]
    refused = [c for c in third if c[1].startswith("test_refused[")]
    noted = [c for c in third if c[1].startswith("test_an_option_that_does_nothing")]
    survived = [c for c in third if c[0].endswith("sweep3_faults") and c[2] != "skipped"]
    failed3 = [name for _, name, text in third if text and text != "skipped"]
    print(f"third sweep: {len(third)} cases tried; {sum(not c[2] for c in refused)}/"
          f"{len(refused)} bad inputs refused cleanly; {sum(not c[2] for c in noted)}/"
          f"{len(noted)} no-op options noted; {sum(not c[2] for c in survived)}/"
          f"{len(survived)} faults survived; {len(SWEEP3_FIXED)} bugs found and fixed"
          + (f"; failing: {', '.join(failed3)}" if failed3 else ""))
    ok = (clean == len(inputs) and not lost and not hangs and not other and not failed3)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
