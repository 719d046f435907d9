"""The project's own documentation: self-contained, linked correctly, and the front page short.

* No file of the project cites a design document or folder outside the repository:
  users read ``docs/``.
* Every relative link of ``README.md`` and ``docs/*.md`` (and of ``results/README.md`` and
  ``CHANGELOG.md``) reaches an existing file, and
  a ``#fragment`` into a Markdown file names one of its headings (GitHub's anchors).
* ``README.md`` stays a front page (at most :data:`README_MAX_LINES` lines).
* ``docs/`` holds the pages the README links to; ``CITATION.cff`` is valid CFF metadata.
* ``docs/architecture.md`` names every wing that ``tests/test_architecture.py`` enforces.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README_MAX_LINES = 210

# written split, so that this file does not match its own patterns
OUTSIDE_REFERENCES = re.compile("DESIGN" + r"\.md|shared" + r"\s+folder", re.IGNORECASE)

# [text](target) and ![alt](target), the target up to whitespace or ')'
MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")


def project_files() -> list[Path]:
    """The files git tracks, plus new files it does not ignore (what a commit would hold)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def text_of(path: Path) -> str | None:
    """The file as UTF-8 text; None for a binary file (a NUL byte, or not UTF-8)."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def doc_pages() -> list[Path]:
    """The pages a user reads: the README, docs/, and the results and changelog pages."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "results" / "README.md",
            ROOT / "CHANGELOG.md"]


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks (links there are not links)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def links_of(path: Path) -> list[str]:
    """The link targets of a Markdown page, inline code spans left out."""
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        targets += MARKDOWN_LINK.findall(re.sub(r"`[^`]*`(?!\])", "", line))
    return targets


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip()).lower()
    text = "".join(ch for ch in text if ch in " -" or unicodedata.category(ch)[0] in "LNM")
    return text.replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    """Every heading anchor of a Markdown page (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = github_anchor(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return anchors


def test_github_anchor_follows_githubs_rules():
    assert github_anchor("Published tables (`bench reproduce`)") == \
        "published-tables-bench-reproduce"
    assert github_anchor("The run record (`bench/store/record.py`)") == \
        "the-run-record-benchstorerecordpy"
    assert github_anchor("Scaling operators & input: A, B") == "scaling-operators--input-a-b"


def test_no_file_cites_a_document_outside_the_repository():
    offenders = []
    for path in project_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE_REFERENCES.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "cite docs/ instead:\n" + "\n".join(offenders)


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_existing_files(page: Path):
    broken = []
    for target in links_of(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            where = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
            broken.append(f"{target}: no such file {where}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors_of(dest):
            broken.append(f"{target}: {dest.name} has no heading with anchor #{fragment}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


# a path of the project in an inline code span: `bench/run/metrics.py`, `tests/slurm/`; a
# bold code span (**`tests/test_mynet.py`**) labels a file of an example, not of the project
PROJECT_PATH = re.compile(
    r"(?<!\*\*)`((?:bench|methods|datasets|tests|docs|results/reference)/[^`\s]*)`")


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_named_project_paths_exist(page: Path):
    """A file or folder of the project that a page names (in code) is there: the pages
    follow the code when it moves. Patterns (``<method>``, ``*``) and the bold labels of an
    example's files are left out."""
    missing = []
    for line in prose_lines(page.read_text(encoding="utf-8")):
        for path in PROJECT_PATH.findall(line):
            if re.search(r"[<>*{}]", path):
                continue
            if not (ROOT / path.rstrip(".,;:")).exists():
                missing.append(path)
    assert not missing, f"{page.relative_to(ROOT)} names missing path(s): {', '.join(missing)}"


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail into docs/")


def test_docs_hold_the_pages_this_project_writes():
    for name in ("architecture.md", "protocols.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


def test_docs_hold_the_method_and_api_guides():
    for name in ("adding-a-method.md", "api.md"):
        assert (DOCS / name).is_file(), f"docs/{name} is missing"


def test_readme_links_every_docs_page():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links_of(ROOT / "README.md")}
    missing = [p.name for p in sorted(DOCS.glob("*.md"))
               if p.resolve() not in linked and p.name != "index.md"]
    assert not missing, f"README.md does not link docs/{', docs/'.join(missing)}"


def test_architecture_names_every_enforced_wing():
    from architecture_support import WINGS

    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    missing = [wing for wing in WINGS if f"`{wing}/`" not in text]
    assert not missing, f"docs/architecture.md does not describe the wing(s) {', '.join(missing)}"


def test_citation_cff_is_valid_metadata():
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    for key in ("cff-version", "message", "title", "authors"):
        assert data.get(key), f"CITATION.cff lacks {key}"
    assert str(data["cff-version"]) == "1.2.0"
    assert data["title"] == "scaleqbench" and data["type"] == "software"
    assert all("name" in a or "family-names" in a for a in data["authors"])
    for ref in data.get("references", []):
        assert {"type", "title", "authors"} <= set(ref), f"incomplete reference {ref.get('title')}"
        assert all("family-names" in a or "name" in a for a in ref["authors"]), ref["title"]
        assert isinstance(ref.get("year"), int), f"{ref['title']}: year {ref.get('year')!r}"


def test_citation_version_matches_the_package():
    import tomllib

    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert str(cff["version"]) == project["version"]
    assert cff["license"] == project["license"]
