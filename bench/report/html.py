"""``index.html``: one self-contained page (no scripts, no network) holding the whole report.

Tables are rendered from the same strings as ``leaderboard.md``; figures are
inlined as base64 PNG with links to the PNG/PDF files beside the page; every
experiment shows the exact command that produced it (``record["command"]`` when
the record holds it, otherwise a ``bench run`` command rebuilt from the
records' specs, said so), the versions and git revisions, and a link to each
run's record JSON.
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

from scalebench.bench.report.data import Experiment, ReportData, section_title
from scalebench.bench.report.tables import METRICS, best_mask, display_table

__all__ = ["FigureEntry", "experiment_commands", "render_html", "slug"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}h3{font-size:1.1em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.88em}
th,td{padding:.25em .6em;border-bottom:1px solid #e3e3e3;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{border-bottom:2px solid #999}
tbody tr:nth-child(even){background:#f7f7f7}td.best{font-weight:700}
td.failed{color:#b00}td.text{text-align:left;white-space:normal}
figure{margin:1em 0 2em}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.88em;color:#444}pre{background:#f4f4f4;padding:.6em;overflow-x:auto;
font-size:.85em;white-space:pre-wrap;word-break:break-all}
.note{font-size:.85em;color:#555}.scroll{overflow-x:auto}nav ul{columns:2}code{font-size:.9em}
"""


@dataclass
class FigureEntry:
    """A figure written beside the page, and where it belongs."""

    name: str
    title: str
    caption: str
    png: Path
    pdf: Path
    section: tuple[str, str, str] | None = None


def slug(*parts: str) -> str:
    text = "-".join(parts).replace("+", "plus")
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _href(target: str | Path, out_dir: Path) -> str:
    rel = os.path.relpath(Path(target).resolve(), out_dir.resolve())
    return quote(Path(rel).as_posix())


def _table(columns: list[str], rows: list[list[tuple[str, str]]]) -> str:
    """rows of (html, css class) cells."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="{cls}">{cell}</td>' if cls else f"<td>{cell}</td>"
                                    for cell, cls in row) + "</tr>" for row in rows)
    # wide tables scroll inside their box instead of widening the page
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


def _leaderboard_html(board: pd.DataFrame) -> str:
    shown = display_table(board)
    mask = best_mask(board).reset_index(drop=True)
    best_cols = {name: col for col, name, _ in METRICS}
    rows = []
    for i, row in shown.iterrows():
        rows.append([(_e(v), "best" if c in best_cols and mask.at[i, best_cols[c]] else "")
                     for c, v in row.items()])
    return _table(list(shown.columns), rows)


def _spec_command(specs: list[dict], folder: Path) -> str:
    """A ``bench run`` line that re-creates runs sharing everything but method and seed."""
    methods = list(dict.fromkeys(_method_label(s) for s in specs))
    seeds = sorted({int(s.get("seed", 0)) for s in specs})
    s0 = specs[0]
    argv = ["bench", "run", "--methods", ",".join(methods), "--dataset", str(s0.get("dataset")),
            "--seeds", ",".join(map(str, seeds)), "--preset", str(s0.get("preset"))]
    if s0.get("source") not in (None, "embedded"):
        argv += ["--source", str(s0["source"])]
    for key, flag in (("epochs", "--epochs"), ("limit_train", "--limit-train"),
                      ("limit_eval", "--limit-eval"), ("data_root", "--data-root")):
        if s0.get(key) is not None:
            argv += [flag, str(s0[key])]
    if s0.get("device") not in (None, "auto"):
        argv += ["--device", str(s0["device"])]
    argv += ["--out", str(folder)]
    return shlex.join(argv)


def _method_label(spec: dict) -> str:
    from scalebench.bench.spec import format_method

    return format_method(str(spec.get("method")), dict(spec.get("method_kwargs") or {}))


def experiment_commands(exp: Experiment) -> list[tuple[str, bool]]:
    """The commands behind an experiment's records, each with whether it was recorded verbatim."""
    out: dict[str, bool] = {}
    rebuilt: dict[str, list[dict]] = {}
    for r in exp.records:
        cmd = r.get("command")
        if isinstance(cmd, (list, tuple)) and cmd:
            argv = [str(a) for a in cmd]
            if Path(argv[0]).name == "bench":
                argv[0] = "bench"
            elif argv[0] == "run":
                argv = ["bench", *argv]
            out.setdefault(shlex.join(argv), True)
        elif isinstance(cmd, str) and cmd.strip():
            out.setdefault(cmd.strip(), True)
        elif isinstance(r.get("spec"), dict):
            spec = r["spec"]
            key = repr({k: v for k, v in sorted(spec.items()) if k not in ("method", "seed",
                                                                          "method_kwargs")})
            rebuilt.setdefault(key, []).append(spec)
    for specs in rebuilt.values():
        # methods run with different seed sets get one command each, so each line re-creates
        # exactly the runs it stands for
        seeds: dict[str, set[int]] = {}
        for spec in specs:
            seeds.setdefault(_method_label(spec), set()).add(int(spec.get("seed") or 0))
        by_seeds: dict[tuple[int, ...], list[dict]] = {}
        for spec in specs:
            by_seeds.setdefault(tuple(sorted(seeds[_method_label(spec)])), []).append(spec)
        for group in by_seeds.values():
            out.setdefault(_spec_command(group, exp.folder), False)
    return list(out.items())


def _versions_table(records: list[dict]) -> str:
    counts: dict[tuple, int] = {}
    for r in records:
        v = r.get("versions") or {}
        key = tuple(sorted((str(k), str(val)) for k, val in v.items()))
        counts[key] = counts.get(key, 0) + 1
    keys = sorted({k for key in counts for k, _ in key})
    rows = [[(_e(dict(key).get(k, "—")), "") for k in keys] + [(str(n), "")]
            for key, n in counts.items()]
    return _table(keys + ["runs"], rows) if keys else '<p class="note">no versions recorded</p>'


def _fmt(x, scale: float = 1.0, fmt: str = ".2f") -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "—"
    return "—" if v != v else format(scale * v, fmt)


def _runs_table(exp: Experiment, out_dir: Path) -> str:
    rows = []
    for r in sorted(exp.records, key=lambda r: (str(r.get("dataset")), str(r.get("method")),
                                                r.get("seed") or 0)):
        path = r.get("record_path")
        link = (f'<a href="{_href(path, out_dir)}">{_e(r["run_id"])}</a>' if path
                else _e(r["run_id"]))
        ok = r.get("status") == "ok"
        err = (r.get("error") or "").strip().splitlines()[-1:] or [""]
        rows.append([(_e(r.get("method")), ""), (_e(r.get("dataset")), ""), (_e(r.get("seed")), ""),
                     (_e(r.get("status")), "" if ok else "failed"),
                     (_fmt(r.get("test_acc"), 100), ""), (_fmt(r.get("eq_err"), 1, ".2e"), ""),
                     (_fmt(r.get("train_time_s"), 1, ".1f"), ""), (_e(r.get("device")), ""),
                     (_e(r.get("finished_at")), ""), (link, ""), (_e(err[0]), "text failed")])
    return _table(["method", "dataset", "seed", "status", "test acc (%)", "equiv. err",
                   "train time (s)", "device", "finished", "record", "error"], rows)


def _figure_html(fig: FigureEntry, out_dir: Path) -> str:
    data = base64.b64encode(fig.png.read_bytes()).decode("ascii")
    return (f'<figure id="{_e(fig.name)}"><img alt="{_e(fig.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption><b>{_e(fig.title)}.</b> '
            f'{_e(fig.caption)} (<a href="{_href(fig.png, out_dir)}">PNG</a>, '
            f'<a href="{_href(fig.pdf, out_dir)}">PDF</a>)</figcaption></figure>')


def render_html(data: ReportData, board: pd.DataFrame, figures: list[FigureEntry],
                out_dir: Path, notes: list[str], table_files: list[Path]) -> str:
    """The page, as a string (written by the caller)."""
    out_dir = Path(out_dir)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    gits = sorted({str((r.get("versions") or {}).get("git", "unknown")) for r in data.records})
    keys = (list(board.groupby(["dataset", "source", "preset"], sort=False).groups)
            if len(board) else [])
    toc = "".join(f'<li><a href="#{slug(*k)}">{_e(section_title(*k))}</a></li>' for k in keys)
    parts = [f"<h1>scalebench report</h1><p class=\"note\">Generated {now} from "
             f"{len(data.experiments)} experiment folder(s), {len(data.records)} run record(s); "
             f"git revision(s) of the runs: {_e(', '.join(gits))}. Tables: "
             + ", ".join(f'<a href="{_href(p, out_dir)}">{_e(p.name)}</a>' for p in table_files)
             + ".</p>",
             f'<nav><ul>{toc}<li><a href="#experiments">Experiments and runs</a></li></ul></nav>']
    for key in keys:
        sub = board[(board.dataset == key[0]) & (board.source == key[1]) & (board.preset == key[2])]
        parts.append(f'<h2 id="{slug(*key)}">{_e(section_title(*key))}</h2>')
        parts.append(_leaderboard_html(sub))
        parts.extend(_figure_html(f, out_dir) for f in figures if f.section == key)
    if notes:
        parts.append("<ul class=\"note\">" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    extra = [f for f in figures if f.section is None]
    if extra:
        parts.append('<h2 id="cost">Training cost</h2>')
        parts.extend(_figure_html(f, out_dir) for f in extra)
    parts.append('<h2 id="experiments">Experiments and runs</h2>')
    for exp in data.experiments:
        n_ok = sum(r.get("status") == "ok" for r in exp.records)
        n_failed = len(exp.records) - n_ok
        parts.append(f'<h3>{_e(exp.name)}</h3><p class="note">folder <code>{_e(exp.folder)}'
                     f"</code>: {len(exp.records)} run(s), {n_ok} ok, {n_failed} failed</p>")
        for cmd, recorded in experiment_commands(exp):
            label = "command" if recorded else "command (rebuilt from the records' specs)"
            parts.append(f'<p class="note">{label}:</p><pre>{_e(cmd)}</pre>')
        parts.append(_versions_table(exp.records))
        parts.append(_runs_table(exp, out_dir))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            # an empty icon: otherwise the browser asks for /favicon.ico
            "<link rel=\"icon\" href=\"data:,\">"
            f"<title>scalebench report</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
