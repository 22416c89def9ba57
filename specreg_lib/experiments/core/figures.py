"""Figure pieces every staged study draws the same way (the audio and image A/B studies' screen panels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.ticker import NullFormatter


def screen_panel(ax: Any, xs: Sequence[float], ys: Sequence[float | None], baseline: float | None,
                 chosen_x: float, limit: float | None = None) -> None:
    """One metric of one variant's screen: the values against the screened settings (log x, ticks at the settings
    only), the baseline (dashed), the guard's limit when this is the guard metric (dotted: baseline + floor) and the
    rule's choice (red ring). Missing values (None) are gaps."""
    ys = [np.nan if y is None else y for y in ys]
    ax.plot(xs, ys, "o-", ms=3, lw=1)
    if baseline is not None:
        ax.axhline(baseline, color="0.4", ls="--", lw=0.8, label="baseline")
    if limit is not None:
        ax.axhline(limit, color="0.4", ls=":", lw=0.8, label="guard: baseline + floor")
    k = list(xs).index(chosen_x)
    ax.plot([xs[k]], [ys[k]], "o", ms=9, mfc="none", mec="red", label="chosen")
    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.ticklabel_format(axis="y", useOffset=False)  # the values themselves, not an offset
    ax.tick_params(labelsize=6)
