"""What a notebook hands to the runner: ``metrics.json`` and labelled PNG+PDF figures in ``out_dir``.

Contract (the runner, the report and the notebook tests rely on it):
``metrics.json`` = {"notebook", "profile", "stand_in": str | None, "headline": {name: float}, ...}.
``headline`` holds the few scalar numbers shown in the run summary; every other key is free-form.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .config import check_profile
from .io import save_figure, write_json

METRICS_FILE = "metrics.json"


def write_metrics(
    out_dir: str | os.PathLike,
    notebook: str,
    profile: str,
    headline: dict[str, float],
    stand_in: str | None = None,
    **details: Any,
) -> Path:
    """Write ``out_dir/metrics.json`` atomically; ``headline`` values must be finite scalars."""
    check_profile(profile)
    bad = {k: v for k, v in headline.items() if not isinstance(v, int | float) or not math.isfinite(float(v))}
    if bad:
        raise ValueError(f"headline metrics must be finite numbers; got {bad}")
    payload = {"notebook": notebook, "profile": profile, "stand_in": stand_in,
               "headline": {k: float(v) for k, v in headline.items()}, **details}
    return write_json(Path(out_dir) / METRICS_FILE, payload)


def profile_label(profile: str, stand_in: str | None = None) -> str:
    """The caption every figure carries: the profile, and the stand-in data when real data was swapped."""
    check_profile(profile)
    text = f"profile: {profile}"
    if stand_in:
        text += f" | STAND-IN DATA: {stand_in}"
    return text


def save_labelled(fig: Any, out_dir: str | os.PathLike, name: str, profile: str,
                  stand_in: str | None = None) -> list[Path]:
    """Stamp the profile/stand-in label on ``fig`` and save ``out_dir/name.{png,pdf}``."""
    fig.text(0.995, 0.005, profile_label(profile, stand_in), ha="right", va="bottom", fontsize=7,
             color="firebrick" if stand_in or profile == "smoke" else "0.3")
    return save_figure(fig, Path(out_dir) / name)
