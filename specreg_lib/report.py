"""One self-contained HTML page per run: every figure (embedded) and metrics table, with a header."""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path
from typing import Any

from .io import atomic_open
from .runner import NotebookResult

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;
font-size:13px}th{background:#f3f3f3}.failed{color:#b00}.ok{color:#070}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:.6em;white-space:pre-wrap;font-size:12px}.stand{color:#b00;font-weight:bold}"""


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


def headline_text(metrics: dict[str, Any] | None, limit: int = 3) -> str:
    """A short ``key=value`` summary of a notebook's headline metrics."""
    if not metrics:
        return ""
    items = list(metrics.get("headline", {}).items())[:limit]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def write_report(path: Path, results: list[NotebookResult], profile: str, env: dict[str, Any],
                 command: str) -> Path:
    """Write the run's HTML report atomically: header (profile, versions, device, date), then each notebook."""
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
    if profile == "smoke":
        parts.append("<p class='stand'>smoke profile: tiny models, few steps and stand-in data. It shows that "
                     "the pipeline runs, not the paper's effect.</p>")
    summary = [(r.name, f"<span class='{r.status}'>{r.status}</span>", f"{r.wall_s:.1f} s", headline_text(r.metrics))
               for r in results]
    rows = "".join(f"<tr><td><a href='#{n}'>{n}</a></td><td>{s}</td><td>{w}</td><td>{html.escape(h)}</td></tr>"
                   for n, s, w, h in summary)
    parts.append(f"<h2>Summary</h2><table><tr><th>notebook</th><th>status</th><th>wall</th><th>headline</th>"
                 f"</tr>{rows}</table>")
    for r in results:
        parts.append(f"<h2 id='{html.escape(r.name)}'>{html.escape(r.name)}</h2>")
        if r.error:
            parts.append(f"<pre class='failed'>{html.escape(r.error)}</pre>")
        if r.metrics:
            if r.metrics.get("stand_in"):
                parts.append(f"<p class='stand'>stand-in data: {html.escape(str(r.metrics['stand_in']))}</p>")
            parts.append("<h3>Headline metrics</h3>" + _table(list(r.metrics.get("headline", {}).items())))
            rest = {k: v for k, v in r.metrics.items() if k not in ("headline",)}
            parts.append("<details><summary>all metrics</summary>" + _table(_flatten(rest)) + "</details>")
        for png in sorted(r.out_dir.glob("*.png")) if r.out_dir.is_dir() else []:
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"<h4>{html.escape(png.stem)}</h4><img alt='{html.escape(png.stem)}' "
                         f"src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path
