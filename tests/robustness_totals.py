"""Totals of issue 13's robustness sweep: ``python tests/robustness_totals.py``.

Runs tests/test_bad_inputs.py and the tests/test_faults*.py modules (the default suite runs them
too) and counts, from pytest's JUnit report:

* bad inputs: how many got a clean one-line error (their case passed), out of all;
* faults: how many kept every finished record (none failed saying ``RECORD LOST``)
  and how many hung (failed by pytest-timeout), out of all, with the faults that
  failed otherwise listed.

Exit status 0 only for 100 % clean errors, 0 records lost and 0 hangs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("tests/test_bad_inputs.py", "tests/test_faults.py", "tests/test_faults_files.py",
           "tests/test_faults_slurm.py")


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
    ok = clean == len(inputs) and not lost and not hangs and not other
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
