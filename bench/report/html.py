"""``index.html``: one self-contained page (no scripts, no network) holding the whole report.

Tables are rendered from the same strings as ``leaderboard.md``; figures are
inlined as base64 PNG with links to the PNG/PDF files beside the page; every
experiment shows the exact command that produced it (the record's ``command``
when it holds one, otherwise a ``bench run`` command rebuilt from the records'
specs, said so), the versions and git revisions, and a link to each run's
record JSON. Record files that could not be read are listed by name, and runs
found in several folders are said to be counted once.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from scaleqbench.bench.formatting import MISSING, num
from scaleqbench.bench.report.leaderboard import comparison, runs_text
from scaleqbench.bench.store.record import RunRecord
from scaleqbench.bench.report.cost_table import cost_html
from scaleqbench.bench.report.data import (
    Experiment,
    ReportData,
    section_slug,
    section_title,
)
from scaleqbench.bench.report.html_board import (
    glossary_html,
    key_html,
    leaderboard_html,
    rank_summary_html,
    table_html,
)
from scaleqbench.bench.report.plots import Palette
from scaleqbench.bench.report.tables import display_table, published_input, section_frames
from scaleqbench.bench.spec import PUBLISHED_INPUT, Protocol, RunSpec

__all__ = ["RANKS_FIGURE", "FigureEntry", "experiment_commands", "render_html"]

#: the name of the critical-difference figure: shown beside the average-rank summary
RANKS_FIGURE = "average_ranks"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1240px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}h3{font-size:1.1em;margin:1.2em 0 .3em}
table{border-collapse:collapse;margin:.3em 0 .6em;font-size:.86em}
th,td{padding:.25em .5em;border-bottom:1px solid #e3e3e3;text-align:right;white-space:nowrap;
vertical-align:top}th{border-bottom:2px solid #999;background:#fff;white-space:normal;
vertical-align:bottom}th[title]{cursor:help;text-decoration:underline dotted #999}
th:first-child,td:first-child{text-align:left}
tbody tr:nth-child(even){background:#f7f7f7}td.tied{font-weight:700}
.ci{display:block;font-size:.8em;color:#666;font-weight:400}td.tied .ci{color:#333}
td.failed{color:#b00}td.text{text-align:left;white-space:normal;min-width:16em}
td.count{white-space:normal}td.method{white-space:normal;min-width:8em}
.key{display:inline-block;width:14px;height:14px;margin-right:.35em;vertical-align:-2px}
.board{display:grid;grid-template-columns:minmax(0,1fr) 15em;gap:1.2em;align-items:start}
.glossary{font-size:.8em;color:#333;background:#f8f8f8;border:1px solid #e3e3e3;
padding:.2em .9em .6em;position:sticky;top:.5em}.glossary h3{margin:.5em 0}
.glossary dt{font-weight:700;margin-top:.35em}.glossary dd{margin:0 0 0 .6em}
@media (max-width:900px){.board{grid-template-columns:minmax(0,1fr)}.glossary{position:static}}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88em;color:#444}pre{background:#f4f4f4;padding:.6em;overflow-x:auto;
font-size:.85em;white-space:pre-wrap;word-break:break-all}
.note{font-size:.85em;color:#555}.scroll{overflow-x:auto;max-width:100%}
.runs{max-height:32em;overflow:auto;border:1px solid #e3e3e3}.runs table{margin:0}
.runs thead th{position:sticky;top:0}
nav ul{columns:2}code{font-size:.9em}
"""


@dataclass
class FigureEntry:
    """A figure written beside the page, and where it belongs."""

    name: str
    title: str
    caption: str
    png: Path
    pdf: Path
    section: Protocol | None = None


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _href(target: str | Path, out_dir: Path) -> str:
    rel = os.path.relpath(Path(target).resolve(), out_dir.resolve())
    return quote(Path(rel).as_posix())


def _input_arg(spec: RunSpec) -> str:
    """The ``--input`` that re-creates ``spec``: ``published`` where its policy is the
    method's published one (one command then re-creates a padded baseline and a native
    ``fourier`` together), else the concrete policy."""
    return PUBLISHED_INPUT if published_input(spec.method, spec.dataset) == spec.input \
        else spec.input


def _spec_command(specs: list[RunSpec], folder: Path) -> str:
    """A ``bench run`` line that re-creates runs sharing everything but method and seed."""
    methods = list(dict.fromkeys(s.label for s in specs))
    seeds = sorted({s.seed for s in specs})
    s0 = specs[0]
    argv = ["bench", "run", "--methods", ",".join(methods), "--dataset", s0.dataset,
            "--seeds", ",".join(map(str, seeds)), "--preset", s0.preset]
    if s0.source != "embedded":
        argv += ["--source", s0.source]
    for value, flag in ((s0.epochs, "--epochs"), (s0.limit_train, "--limit-train"),
                        (s0.limit_eval, "--limit-eval"), (s0.data_root, "--data-root")):
        if value is not None:
            argv += [flag, str(value)]
    policy = _input_arg(s0)
    if policy != PUBLISHED_INPUT:  # the default of bench run
        argv += ["--input", policy]
    if s0.device != "auto":
        argv += ["--device", s0.device]
    argv += ["--out", str(folder)]
    return shlex.join(argv)


def experiment_commands(exp: Experiment) -> list[tuple[str, bool]]:
    """The commands behind an experiment's records, each with whether it was recorded verbatim."""
    out: dict[str, bool] = {}
    rebuilt: dict[str, list[RunSpec]] = {}
    for r in exp.records:
        cmd = r.command
        if isinstance(cmd, list) and cmd:
            argv = [str(a) for a in cmd]
            if Path(argv[0]).name == "bench":
                argv[0] = "bench"
            elif argv[0] == "run":
                argv = ["bench", *argv]
            out.setdefault(shlex.join(argv), True)
        elif isinstance(cmd, str) and cmd.strip():
            out.setdefault(cmd.strip(), True)
        else:
            key = repr({**{k: v for k, v in sorted(r.spec.to_json().items())
                           if k not in ("method", "seed", "method_kwargs", "protocol")},
                        **vars(r.spec.protocol), "input": _input_arg(r.spec)})
            rebuilt.setdefault(key, []).append(r.spec)
    for specs in rebuilt.values():
        # methods run with different seed sets get one command each, so each line re-creates
        # exactly the runs it stands for
        seeds: dict[str, set[int]] = {}
        for spec in specs:
            seeds.setdefault(spec.label, set()).add(spec.seed)
        by_seeds: dict[tuple[int, ...], list[RunSpec]] = {}
        for spec in specs:
            by_seeds.setdefault(tuple(sorted(seeds[spec.label])), []).append(spec)
        for group in by_seeds.values():
            out.setdefault(_spec_command(group, exp.folder), False)
    return list(out.items())


def _versions_table(records: list[RunRecord]) -> str:
    counts: dict[tuple, int] = {}
    for r in records:
        key = tuple(sorted((str(k), str(val)) for k, val in r.versions.items()))
        counts[key] = counts.get(key, 0) + 1
    keys = sorted({k for key in counts for k, _ in key})
    rows = [[(_e(dict(key).get(k, MISSING)), "") for k in keys] + [(str(n), "")]
            for key, n in counts.items()]
    return table_html(keys + ["runs"], rows) if keys else \
        '<p class="note">no versions recorded</p>'


def _runs_table(exp: Experiment, out_dir: Path) -> str:
    rows = []
    for r in sorted(exp.records, key=lambda r: (r.dataset, r.method, r.input, r.seed)):
        link = (f'<a href="{_href(r.path, out_dir)}">{_e(r.run_id)}</a>' if r.path
                else _e(r.run_id))
        err = (r.error or "").strip().splitlines()[-1:] or [""]
        rows.append([(_e(r.method), ""), (_e(r.dataset), ""), (_e(r.input), ""), (_e(r.seed), ""),
                     (_e(r.status), "" if r.ok else "failed"),
                     (num(r.test_acc, ".2f", 100), ""), (num(r.eq_err, ".2e"), ""),
                     (num(r.train_time_s, ".1f"), ""), (_e(r.device), ""),
                     (_e(r.finished_at), ""), (link, ""), (_e(err[0]), "text failed")])
    # many runs: the table scrolls inside its box, both ways, its header staying in view
    return table_html(["method", "dataset", "input", "seed", "status", "test acc (%)",
                       "equiv. err", "train time (s)", "device", "finished", "record", "error"],
                      rows, box="scroll runs")


def _figure_html(fig: FigureEntry, out_dir: Path) -> str:
    data = base64.b64encode(fig.png.read_bytes()).decode("ascii")
    return (f'<figure id="{_e(fig.name)}"><img alt="{_e(fig.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption><b>{_e(fig.title)}.</b> '
            f'{_e(fig.caption)} (<a href="{_href(fig.png, out_dir)}">PNG</a>, '
            f'<a href="{_href(fig.pdf, out_dir)}">PDF</a>)</figcaption></figure>')


def _leaderboard_part(board: pd.DataFrame, palette: Palette, notes: list[str],
                      ranks_figure: str = "") -> list[str]:
    """The tables of every section, the average-rank summary and the notes, with the
    glossary beside them."""
    tables_html = []
    for key, sub in section_frames(board):
        tables_html.append(f'<h3 id="table-{section_slug(key)}">{_e(section_title(key))} '
                           f'<a class="note" href="#{section_slug(key)}">(figures)</a></h3>')
        tables_html.append(leaderboard_html(sub, palette))
    tables_html.append(rank_summary_html(board, section_frames(board), palette))
    tables_html.append(ranks_figure)
    if notes:
        tables_html.append('<ul class="note">' + "".join(f"<li>{_e(n)}</li>" for n in notes)
                           + "</ul>")
    columns = [c for _, sub in section_frames(board) for c in display_table(sub).columns]
    return ['<h2 id="leaderboard">Leaderboard</h2>',
            f'<div class="board"><div>{"".join(tables_html)}</div>{glossary_html(columns)}</div>']


def render_html(data: ReportData, board: pd.DataFrame, figures: list[FigureEntry],
                out_dir: Path, notes: list[str], table_files: list[Path],
                palette: Palette | None = None) -> str:
    """The page, as a string (written by the caller); ``palette``: the figures' styles (the
    keys beside the methods' names)."""
    out_dir = Path(out_dir)
    palette = palette or Palette(list(board.method) if len(board) else [])
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    gits = sorted({str(r.versions.get("git", "unknown")) for r in data.records})
    keys = list(dict.fromkeys(comparison(p) for p in board.protocol)) if len(board) else []
    toc = "".join(f'<li><a href="#{section_slug(k)}">Figures: {_e(section_title(k))}</a></li>'
                  for k in keys)
    parts = [f"<h1>scaleqbench report</h1><p class=\"note\">Generated {now} from "
             f"{len(data.experiments)} experiment folder(s), {len(data.records)} run record(s); "
             f"git revision(s) of the runs: {_e(', '.join(gits))}. Tables: "
             + ", ".join(f'<a href="{_href(p, out_dir)}">{_e(p.name)}</a>' for p in table_files)
             + ".</p>",
             f'<nav><ul><li><a href="#leaderboard">Leaderboard</a></li>{toc}'
             '<li><a href="#experiments">Experiments and runs</a></li></ul></nav>']
    if data.problems or data.notes:
        # the reader must know what the tables leave out or count once
        items = [f"{_e(p)}; left out" for p in data.problems] + [_e(n) for n in data.notes]
        parts.append('<ul class="note">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
    if keys:
        ranks = "".join(_figure_html(f, out_dir) for f in figures if f.name == RANKS_FIGURE)
        parts.extend(_leaderboard_part(board, palette, notes, ranks))
    for key in keys:
        parts.append(f'<h2 id="{section_slug(key)}">Figures: {_e(section_title(key))}</h2>')
        parts.extend(_figure_html(f, out_dir) for f in figures if f.section == key)
    extra = [f for f in figures if f.section is None and f.name != RANKS_FIGURE]
    has_perf = data.perf is not None and not data.perf.empty
    if extra or has_perf:
        parts.append('<h2 id="cost">Training cost</h2>')
        if has_perf:
            parts.append(cost_html(data.perf, lambda m: key_html(m, palette)))
        parts.extend(_figure_html(f, out_dir) for f in extra)
    parts.append('<h2 id="experiments">Experiments and runs</h2>')
    for exp in data.experiments:
        n_ok = sum(r.ok for r in exp.records)
        n_failed = len(exp.records) - n_ok
        parts.append(f'<h3>{_e(exp.name)}</h3><p class="note">folder <code>{_e(exp.folder)}'
                     f"</code>: {runs_text(len(exp.records), n_failed)} ({n_ok} ok)</p>")
        for cmd, recorded in experiment_commands(exp):
            label = "command" if recorded else "command (rebuilt from the records' specs)"
            parts.append(f'<p class="note">{label}:</p><pre>{_e(cmd)}</pre>')
        parts.append(_versions_table(exp.records))
        parts.append(_runs_table(exp, out_dir))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            # an empty icon: otherwise the browser asks for /favicon.ico
            "<link rel=\"icon\" href=\"data:,\">"
            f"<title>scaleqbench report</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
