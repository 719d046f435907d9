"""The report's HTML page from synthetic records: self-contained, commands rebuilt from the
specs, keys, glossary and tooltips, and the page as drawn by a headless Chromium at
1280 x 800.
"""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from scaleqbench.bench.report import plots
from scaleqbench.bench.report.html import experiment_commands

# data, experiments, made, perf_json, report: fixtures, found by pytest under these names
from report_support import data, experiments, made, perf_json, report


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


def test_html_is_self_contained(report, experiments):
    out, _ = report
    page = (out / "index.html").read_text()
    parser = _Refs()
    parser.feed(page)
    images = [r for r in parser.refs if r.startswith("data:image/png;base64,")]
    # 5 figures x 3 sections, the 2 small multiples x 3 sections (each of several families)
    # and the training cost: every PNG written is on the page
    assert len(images) == 22 == len(list((out / "figures").glob("*.png")))
    for img in images:
        assert base64.b64decode(img.split(",", 1)[1]).startswith(b"\x89PNG")
    for ref in parser.refs:
        assert not re.match(r"(https?:)?//", ref), ref  # nothing from the network
        if not ref.startswith(("data:", "#")):
            assert (out / unquote(ref)).resolve().is_file(), ref  # links resolve
    records = [r for r in parser.refs if r.endswith(".json")]
    assert len(records) == sum(len(list((f / "runs").glob("*.json"))) for f in experiments)
    assert "bench run --methods cnn,fourier --dataset stl10-res" in page  # recorded command
    assert "rebuilt from the records" in page and "abc1234" in page


def test_commands_rebuilt_from_specs(data):
    res = data.experiments[0]
    cmd, recorded = experiment_commands(res)[0]
    assert not recorded
    assert cmd.startswith("bench run --methods ") and "--dataset mnist-res" in cmd
    assert "--epochs 3" in cmd and "--out " in cmd
    # one command per seed set, so that re-running it makes exactly these runs
    cmds = [c for c, _ in experiment_commands(res)]
    assert "bench run --methods cnn,fourier --dataset mnist-res --seeds 0,1,2" in cmds[0]
    assert any("'disco,fourier[impl=reference],sesn,si_convnet'" in c and "--seeds 0 " in c
               for c in cmds)
    (cmd, recorded), = experiment_commands(data.experiments[1])
    assert recorded and cmd.startswith("bench run --methods cnn,fourier")


def _chromium() -> str | None:
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


_BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--window-size=1280,800"]


#: measures the page as laid out (the report itself has no scripts: added to a copy of it)
_PROBE = """<script>
addEventListener('load', () => {
  const d = document.documentElement;
  const box = e => e ? e.getBoundingClientRect().toJSON() : null;
  const keys = [...document.querySelectorAll('.board .key')].map(k => {
    const path = k.querySelector('path');
    return {method: k.dataset.method, color: k.dataset.color, marker: k.dataset.marker,
            fill: k.dataset.fill, stroke: getComputedStyle(path).stroke};
  });
  const heads = [...document.querySelectorAll('.board table th')].map(
    th => [th.textContent, th.getAttribute('title') || '']);
  const runs = document.querySelector('.runs');
  const boards = [...document.querySelectorAll('.board .scroll')].map(
    b => [b.scrollWidth, b.clientWidth]);
  const out = {scrollWidth: d.scrollWidth, clientWidth: d.clientWidth, keys, heads,
    glossary: [...document.querySelectorAll('#glossary dt')].map(dt => dt.textContent),
    glossaryBox: box(document.querySelector('#glossary')),
    tableBox: box(document.querySelector('.board .scroll')), boards,
    runsOverflow: runs ? getComputedStyle(runs).overflowX : null, runsBox: box(runs)};
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _probe(browser: str, page: Path, tmp_path: Path) -> dict:
    """The page laid out at 1280 x 800 in headless Chromium, measured by :data:`_PROBE`."""
    probed = page.with_name("probe.html")  # beside the page: its links resolve the same
    probed.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    try:
        proc = subprocess.run([browser, *_BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'p2'}",
                               "--virtual-time-budget=10000", "--dump-dom", probed.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        probed.unlink()
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, proc.stderr[-2000:]
    return json.loads(html.unescape(m.group(1)))


def _rgb(color: str) -> str:
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_html_in_headless_chromium(report, tmp_path):
    """At 1280 x 800: no console message, a page that does not overflow sideways, every method
    with a distinct (colour, marker) beside its name, the glossary beside the tables and a
    tooltip on each column header."""
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed; run `sh tests/browser/install-chromium.sh`")
    out, _ = report
    shot = tmp_path / "page.png"
    proc = subprocess.run(
        [browser, *_BROWSER_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", f"--screenshot={shot}",
         (out / "index.html").resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    # the page has no scripts: any console message (an error, a blocked load) is a fault
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == [], console
    assert shot.is_file(), proc.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (800, 1280)
    non_white = (pixels < 0.95).any(axis=-1).mean()
    assert 0.01 < non_white < 0.9, non_white  # text and tables, not a blank page
    assert pixels.std() > 0.05

    found = _probe(browser, (out / "index.html").resolve(), tmp_path)
    assert found["scrollWidth"] <= found["clientWidth"] <= 1280, found  # no sideways overflow
    styles: dict[str, tuple[str, str, str]] = {}
    for key in found["keys"]:
        style = (key["color"].lower(), key["marker"], key["fill"])
        assert styles.setdefault(key["method"], style) == style  # one style per method
        assert key["stroke"] == _rgb(key["color"])  # drawn in the colour it says
    assert len(styles) >= 8
    pairs = {(c, m) for c, m, _ in styles.values()}
    assert len(pairs) == len(styles), styles  # every method its own (colour, marker)
    # every leaderboard table fits its box (nothing to scroll to) and the glossary is beside
    # it, defining every column it has an entry for
    assert all(width <= box for width, box in found["boards"]), found["boards"]
    glossary, table = found["glossaryBox"], found["tableBox"]
    assert glossary and glossary["left"] >= table["right"] - 1
    assert glossary["top"] < table["bottom"] and glossary["right"] <= found["clientWidth"]
    for term in ("test acc (%)", "scale consist. (%)", "equiv. err", "logit inv. err", "rank",
                 "runs", "[a, b]", "bold"):
        assert term in found["glossary"], term
    untitled = sorted({text for text, title in found["heads"] if not title})
    assert untitled == [], untitled
    # the per-run tables scroll inside their box
    assert found["runsOverflow"] == "auto" and found["runsBox"]["right"] <= found["clientWidth"]


def test_page_keys_glossary_and_tooltips(report, data):
    """Without a browser: the keys beside the methods are the figures' styles, each column
    header of the leaderboard has its tooltip, failed runs read as such."""
    out, _ = report
    page = (out / "index.html").read_text()
    palette = plots.Palette(list(data.runs.method))
    for method, color, marker, fill in re.findall(
            r'class="key" data-method="([^"]+)" data-color="([^"]+)" data-marker="([^"]+)" '
            r'data-fill="([^"]+)"', page):
        method = html.unescape(method)
        style = palette.style(method)
        assert (color, marker, fill) == (style.color, style.marker,
                                         "none" if style.hollow else "full"), method
    assert '<th title="Scale consistency: the share of test images' in page
    assert 'id="glossary"' in page and "1&nbsp;run, 1&nbsp;failed" in page
    assert "3&nbsp;runs, 0&nbsp;failed" in page
    assert page.index('id="glossary"') < page.index("<figure")  # beside the tables, not after
