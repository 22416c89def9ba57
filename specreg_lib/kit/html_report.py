"""One self-contained HTML page per profile: every notebook's latest results, read from disk, in notebook order.

For each notebook the page shows its headline metrics with their one-line meaning and which direction is
better, the ``cpu`` and ``paper`` results found on disk beside the report's own profile (a column per profile
that has results), its figures, embedded in the order the notebook saved them, and a player for each WAV clip it
saved (``outputs.save_audio``). Notebooks of this invocation also show their
status and wall time; the others show when their results were written.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any

from ..io import atomic_open
from .outputs import METRICS_FILE, headline_text, read_metrics
from .runner import NotebookResult, notebook_out_dir

COMMITTED_PROFILES = ("cpu", "paper")  # shown beside the report's profile when their metrics.json exist
ARROW = {"lower": "lower &darr;", "higher": "higher &uarr;", "neither": "neither"}

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;
font-size:13px}th{background:#f3f3f3}.failed{color:#b00}.ok{color:#070}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;white-space:pre-wrap;font-size:12px}.stand{color:#b00;font-weight:bold}
td.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#777}
.players{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:13px}"""


@dataclasses.dataclass
class NotebookEntry:
    """One notebook on the page: its results per profile (report profile first) and this invocation's run."""

    stem: str
    metrics: dict[str, dict[str, Any]]  # profile -> metrics.json, only profiles that have one
    out_dirs: dict[str, Path]  # profile -> folder the metrics came from
    run: NotebookResult | None = None  # set when the notebook ran in this invocation


def gather(notebooks: list[Path], profile: str, results: list[NotebookResult],
           root: str | os.PathLike | None = None) -> list[NotebookEntry]:
    """Each notebook's latest ``profile`` results (this invocation's, else on disk) and the committed ones beside."""
    ran = {r.name: r for r in results}
    stems = {nb.stem: nb for nb in notebooks}
    entries = []
    for stem in sorted(set(stems) | set(ran)):  # the NN_ prefix orders the page
        entry = NotebookEntry(stem, {}, {}, ran.get(stem))
        for p in (profile, *(q for q in COMMITTED_PROFILES if q != profile)):
            if p == profile and entry.run is not None:
                folder = entry.run.out_dir
            elif stem in stems:
                try:
                    folder = notebook_out_dir(stems[stem], p, root=root)
                except ValueError:
                    continue
            else:
                continue
            m = entry.run.metrics if p == profile and entry.run is not None and entry.run.metrics else \
                read_metrics(folder)
            if m is not None:
                entry.metrics[p], entry.out_dirs[p] = m, folder
        entries.append(entry)
    return entries


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return html.escape(json.dumps(v, default=str)[:300])
    return html.escape(str(v))


def _table(rows: list[tuple[str, Any]], head: tuple[str, str] = ("key", "value")) -> str:
    body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{_fmt(v)}</td></tr>" for k, v in rows)
    return f"<table><tr><th>{head[0]}</th><th>{head[1]}</th></tr>{body}</table>"


def _flatten(d: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v and len(rows) < 200:
            rows += _flatten(v, f"{prefix}{k}.")
        else:
            rows.append((prefix + k, v))
    return rows


def _written(metrics: dict[str, Any], folder: Path) -> str:
    """When the results were written: metrics.json's ``written_at``, else the file's modification time."""
    if metrics.get("written_at"):
        return str(metrics["written_at"])
    try:
        mtime = (folder / METRICS_FILE).stat().st_mtime
    except OSError:
        return "?"
    return _dt.datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds") + " (file time)"


def _status(entry: NotebookEntry, profile: str) -> tuple[str, str]:
    """(status cell, wall cell) of the summary table."""
    if entry.run is not None:
        return f"<span class='{entry.run.status}'>{entry.run.status}</span>", f"{entry.run.wall_s:.1f} s"
    if profile in entry.metrics:
        return "<span class='muted'>earlier run</span>", ""
    return "<span class='muted'>no results</span>", ""


def figure_names(metrics: dict[str, Any], folder: Path) -> tuple[list[str], bool]:
    """Figure names in the order the notebook saved them (``metrics["figures"]``); else alphabetical, flagged."""
    if isinstance(metrics.get("figures"), list):
        return [n for n in metrics["figures"] if (folder / f"{n}.png").is_file()], True
    return sorted(p.stem for p in folder.glob("*.png")), False


def _players(metrics: dict[str, Any], folder: Path) -> list[str]:
    """An HTML <audio> player per clip the notebook recorded (``metrics["audio"]``), the WAV embedded."""
    clips = [c for c in metrics.get("audio") or [] if isinstance(c, dict) and (folder / str(c.get("file"))).is_file()]
    if not clips:
        return []
    cells = []
    for c in clips:
        data = base64.b64encode((folder / c["file"]).read_bytes()).decode("ascii")
        cells.append(f"<figure><figcaption>{html.escape(str(c['label']))}</figcaption><audio controls "
                     f"preload='none' src='data:audio/wav;base64,{data}'></audio></figure>")
    return ["<h4>audio</h4><div class='players'>" + "".join(cells) + "</div>"]


def _banner(profile: str, entries: list[NotebookEntry]) -> str:
    """What the report's profile is, and which other profiles' columns the page really has."""
    others = [p for p in COMMITTED_PROFILES if p != profile and any(p in e.metrics for e in entries)]
    if profile != "smoke":
        return ""
    text = ("smoke profile: tiny models, few steps and stand-in data. It shows that the pipeline runs, not the "
            "paper's effect. ")
    if others:
        cols = " and ".join(others)
        text += (f"The {cols} column{'s' if len(others) > 1 else ''} beside it hold{'' if len(others) > 1 else 's'} "
                 f"the results of earlier {cols} runs found on disk (their notes say where stand-in data was used).")
    else:
        text += ("No cpu or paper results are on disk, so the page has no other column; run specreg reproduce "
                 "--profile cpu (or paper, on a GPU box) to add one.")
    return f"<p class='stand'>{html.escape(text)}</p>"


def _headline_table(entry: NotebookEntry, profiles: list[str]) -> str:
    names: list[str] = []
    for p in profiles:
        names += [k for k in entry.metrics[p].get("headline", {}) if k not in names]
    head = "".join(f"<th>{html.escape(p)}</th>" for p in profiles)
    rows = []
    for k in names:
        gloss = next((entry.metrics[p]["glossary"][k] for p in profiles
                      if k in entry.metrics[p].get("glossary", {})), {})
        vals = "".join(f"<td class='num'>{_fmt(entry.metrics[p].get('headline', {}).get(k, ''))}</td>"
                       for p in profiles)
        rows.append(f"<tr><td><code>{html.escape(k)}</code></td><td>{html.escape(gloss.get('meaning', ''))}</td>"
                    f"<td>{ARROW.get(gloss.get('better'), '?')}</td>{vals}</tr>")
    return (f"<table><tr><th>metric</th><th>meaning</th><th>better</th>{head}</tr>{''.join(rows)}</table>")


def _section(entry: NotebookEntry, profile: str, report_dir: Path) -> list[str]:
    parts = [f"<h2 id='{html.escape(entry.stem)}'>{html.escape(entry.stem)}</h2>"]
    run = entry.run
    if run is not None:
        parts.append(f"<p>this invocation: <span class='{run.status}'>{run.status}</span>, {run.wall_s:.1f} s; "
                     f"outputs in <code>{html.escape(str(run.out_dir))}</code></p>")
        if run.error:
            parts.append(f"<pre class='failed'>{html.escape(run.error)}</pre>")
    profiles = list(entry.metrics)
    if not profiles:
        parts.append("<p class='muted'>no results on disk yet</p>")
        return parts
    written = ", ".join(f"{html.escape(p)}: {html.escape(_written(entry.metrics[p], entry.out_dirs[p]))}"
                        for p in profiles)
    parts.append(f"<p class='muted'>results written &middot; {written}</p>")
    if profile in entry.metrics and (run is None or run.status != "ok"):
        parts.append(f"<p class='muted'>the {html.escape(profile)} column is from an earlier run</p>")
    for p in profiles:
        if entry.metrics[p].get("stand_in"):
            parts.append(f"<p class='stand'>{html.escape(p)}: stand-in data: "
                         f"{html.escape(str(entry.metrics[p]['stand_in']))}</p>")
    parts.append("<h3>Headline metrics</h3>" + _headline_table(entry, profiles))
    if profile in entry.metrics:
        rest = {k: v for k, v in entry.metrics[profile].items() if k not in ("headline", "glossary")}
        parts.append(f"<details><summary>all {html.escape(profile)} metrics</summary>" + _table(_flatten(rest))
                     + "</details>")
        folder = entry.out_dirs[profile]
        names, recorded = figure_names(entry.metrics[profile], folder)
        if not recorded and names:
            parts.append("<p class='muted'>figure order not recorded in metrics.json: alphabetical</p>")
        for name in names:
            data = base64.b64encode((folder / f"{name}.png").read_bytes()).decode("ascii")
            parts.append(f"<h4>{html.escape(name)}</h4><img alt='{html.escape(name)}' "
                         f"src='data:image/png;base64,{data}'>")
        parts += _players(entry.metrics[profile], folder)
    for p in profiles:
        if p == profile:
            continue
        names, _ = figure_names(entry.metrics[p], entry.out_dirs[p])
        hrefs = [Path(os.path.relpath(entry.out_dirs[p] / f"{n}.png", report_dir)).as_posix() for n in names]
        links = ", ".join(f"<a href='{html.escape(h)}'>{html.escape(n)}</a>" for h, n in zip(hrefs, names))
        if links:
            parts.append(f"<p>{html.escape(p)} figures: {links}</p>")
    return parts


def write_report(path: Path, entries: list[NotebookEntry], profile: str, env: dict[str, Any],
                 command: str) -> Path:
    """Write the profile's HTML page atomically: header (profile, versions, device, date), summary, each notebook."""
    dev = env.get("device", {})
    vers = env.get("versions", {})
    date = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>specreg report ({profile})</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>specreg reproduction report: profile <code>{html.escape(profile)}</code></h1>",
             f"<p>{html.escape(date)} &middot; device: <b>{html.escape(str(dev.get('device')))}</b> "
             f"({html.escape(str(dev.get('name')))}, {dev.get('cpu_count')} CPU cores) &middot; "
             f"command: <code>{html.escape(command)}</code></p>",
             "<details><summary>package versions</summary>" + _table(list(vers.items()), ("package", "version"))
             + "</details>"]
    if banner := _banner(profile, entries):
        parts.append(banner)
    rows = []
    for e in entries:
        status, wall = _status(e, profile)
        m = e.metrics.get(profile)
        when = html.escape(_written(m, e.out_dirs[profile])) if m else ""
        rows.append(f"<tr><td><a href='#{html.escape(e.stem)}'>{html.escape(e.stem)}</a></td><td>{status}</td>"
                    f"<td>{wall}</td><td>{when}</td><td>{html.escape(headline_text(m))}</td></tr>")
    parts.append("<h2>Summary</h2><table><tr><th>notebook</th><th>status</th><th>wall</th><th>results written</th>"
                 f"<th>headline ({html.escape(profile)})</th></tr>{''.join(rows)}</table>")
    for e in entries:
        parts += _section(e, profile, Path(path).parent)
    parts.append("</body></html>")
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return Path(path)
