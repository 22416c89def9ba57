"""What a notebook hands to the runner: ``metrics.json`` and labelled PNG+PDF figures in its output folder.

Contract (the runner, the HTML report and the notebook tests rely on it), ``metrics.json`` =
``{"notebook", "profile", "stand_in": str | None, "headline": {name: float}, "glossary": {name: {"meaning",
"better"}}, "figures": [name, ...], "audio": [{"label", "file"}, ...], "written_at": ISO time, ...}``.
``headline`` holds the few finite numbers shown in the run summary, each explained in ``glossary`` (one line, and
whether lower or higher is better); ``figures`` lists the figures in the order the notebook saved them
(``save_labelled``), ``audio`` the WAV clips it saved beside them (``save_audio``: the report plays them); every
other key is free-form.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from ..experiments.core.config import check_profile
from ..io import save_figure, write_json

METRICS_FILE = "metrics.json"
FIGURE_INDEX = ".figures.json"  # the names save_labelled saved, in order, for write_metrics to record
AUDIO_INDEX = ".audio.json"  # the clips save_audio saved, in order: [{"label", "file"}, ...]
BETTER = ("lower", "higher", "neither")


def check_glossary(headline: dict[str, Any], glossary: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The glossary entries of the headline keys; a clear error for missing or malformed ones."""
    missing = [k for k in headline if k not in glossary]
    if missing:
        raise ValueError(f"glossary has no entry for headline metric(s) {missing}; give each "
                         "{'meaning': 'one line', 'better': 'lower' | 'higher' | 'neither'}")
    out = {}
    for k in headline:
        entry = glossary[k]
        if not isinstance(entry, dict) or not str(entry.get("meaning", "")).strip() \
                or entry.get("better") not in BETTER:
            raise ValueError(f"glossary[{k!r}] = {entry!r}: needs a non-empty 'meaning' and 'better' in {BETTER}")
        out[k] = {"meaning": str(entry["meaning"]).strip(), "better": entry["better"]}
    return out


def _figure_index(out_dir: Path) -> tuple[list[str], bool]:
    """(names in saving order, whether write_metrics has recorded them already)."""
    try:
        index = json.loads((out_dir / FIGURE_INDEX).read_text())
        return [n for n in index["names"] if isinstance(n, str)], bool(index["closed"])
    except (OSError, ValueError, KeyError, TypeError):
        return [], False


def write_metrics(
    out_dir: str | os.PathLike,
    notebook: str,
    profile: str,
    headline: dict[str, float],
    glossary: dict[str, dict[str, str]],
    stand_in: str | None = None,
    **details: Any,
) -> Path:
    """Write ``out_dir/metrics.json`` atomically; headline values must be finite and each explained in ``glossary``.

    The figures ``save_labelled`` wrote to ``out_dir`` are recorded in saving order: those of this run (the
    first figure saved after an earlier ``write_metrics`` starts a new list; calling it again keeps the list).
    """
    check_profile(profile)
    bad = {k: v for k, v in headline.items() if not isinstance(v, int | float) or not math.isfinite(float(v))}
    if bad:
        raise ValueError(f"headline metrics must be finite numbers; got {bad}")
    reserved = {"notebook", "profile", "stand_in", "headline", "glossary", "figures", "audio", "written_at"} \
        & set(details)
    if reserved:
        raise TypeError(f"write_metrics sets {sorted(reserved)} itself; rename these details")
    out_dir = Path(out_dir)
    glossary = check_glossary(headline, glossary)
    names, _ = _figure_index(out_dir)
    figures = [n for n in names if (out_dir / f"{n}.png").is_file()]
    clips, _ = _audio_index(out_dir)
    audio = [c for c in clips if (out_dir / c["file"]).is_file()]
    payload = {"notebook": notebook, "profile": profile, "stand_in": stand_in,
               "headline": {k: float(v) for k, v in headline.items()}, "glossary": glossary, "figures": figures,
               "audio": audio, "written_at": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
               **details}
    path = write_json(out_dir / METRICS_FILE, payload)
    if names:
        write_json(out_dir / FIGURE_INDEX, {"names": names, "closed": True})  # the next run starts a new list
    if clips:
        write_json(out_dir / AUDIO_INDEX, {"clips": clips, "closed": True})
    return path


def _audio_index(out_dir: Path) -> tuple[list[dict[str, str]], bool]:
    """(clips in saving order, whether write_metrics has recorded them already)."""
    try:
        index = json.loads((out_dir / AUDIO_INDEX).read_text())
        return [c for c in index["clips"] if isinstance(c, dict) and {"label", "file"} <= set(c)], \
            bool(index["closed"])
    except (OSError, ValueError, KeyError, TypeError):
        return [], False


def save_audio(out_dir: str | os.PathLike, label: str, audio: Any, sample_rate: int) -> Path:
    """Save a mono clip (T,) in [-1, 1] as ``out_dir/<label as a file name>.wav`` (16-bit PCM) and record it in
    saving order, so ``write_metrics`` lists it under ``audio`` and the report gives it a player."""
    from ..data.speech import write_wav

    if not str(label).strip():
        raise ValueError("save_audio needs a non-empty label (shown beside the player)")
    out_dir = Path(out_dir)
    file = re.sub(r"[^A-Za-z0-9._-]+", "_", str(label).strip()).strip("._") + ".wav"
    path = write_wav(out_dir / file, audio, sample_rate)
    clips, closed = _audio_index(out_dir)
    clips = [c for c in ([] if closed else clips) if c["file"] != file] + [{"label": str(label), "file": file}]
    write_json(out_dir / AUDIO_INDEX, {"clips": clips, "closed": False})
    return path


def read_metrics(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``out_dir/metrics.json`` as a dict, or None when there is none (or it is not valid JSON)."""
    try:
        return json.loads((Path(out_dir) / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None


def headline_text(metrics: dict[str, Any] | None, limit: int = 3) -> str:
    """A short ``key=value`` summary of a notebook's headline metrics."""
    if not metrics:
        return ""
    items = list(metrics.get("headline", {}).items())[:limit]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def profile_label(profile: str, stand_in: str | None = None) -> str:
    """The caption every figure carries: the profile, and the stand-in data when real data was swapped."""
    check_profile(profile)
    text = f"profile: {profile}"
    if stand_in:
        text += f" | STAND-IN DATA: {stand_in}"
    return text


def save_labelled(fig: Any, out_dir: str | os.PathLike, name: str, profile: str,
                  stand_in: str | None = None) -> list[Path]:
    """Stamp the profile/stand-in label on ``fig``, save ``out_dir/name.{png,pdf}`` and record ``name`` in order."""
    fig.text(0.995, 0.005, profile_label(profile, stand_in), ha="right", va="bottom", fontsize=7,
             color="firebrick" if stand_in or profile == "smoke" else "0.3")
    paths = save_figure(fig, Path(out_dir) / name)
    names, closed = _figure_index(Path(out_dir))
    names = [n for n in ([] if closed else names) if n != name] + [name]  # a re-saved figure moves last
    write_json(Path(out_dir) / FIGURE_INDEX, {"names": names, "closed": False})
    return paths
