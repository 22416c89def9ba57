"""What the EDM fine-tuning notebook shows: the sweep (family x regularizer x weighting x seed), sample grids laid
out like the paper's Figs. 3-10 (one figure per regularizer and weighting, panel (a) VE-EDM, (b) VP-EDM), and a
table of the in-run metrics with paired differences to the baseline fine-tune of the same seed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from ...data.seed_images import image_grid, to_uint8
from ..core.compare import compare, headline_from_table, wide
from ..core.runs import RunResult
from ..core.sweep import Sweep
from .experiment import EDM_GLOSSARY, edm_experiment

METRICS = ("log_distance", "fd_pixels")
FAMILY_TITLES = {"ve": "VE-EDM (NCSN++)", "vp": "VP-EDM (DDPM++)"}  # the paper's panel order: (a) VE, (b) VP
STANDIN = "tiny random SongUNet, stand-in crops (scikit-image photos)"


def finetune_sweep(preset: str, profile: str, families: Sequence[str] | None = None,
                   variants: Sequence[str] | None = None, weightings: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None, overrides: dict[str, Any] | None = None) -> Sweep:
    """family x regularizer x weighting x seed on a preset (None: both families, all variants, both weightings)."""
    exp = edm_experiment(preset)
    grid = {"model.family": list(families or ("ve", "vp")), "regularizer": list(variants or exp.default_variants),
            "regularizer.weighting": list(weightings or ("weighted", "unweighted"))}
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    return Sweep(exp, profile, over, grid, tuple(seeds or exp.default_seeds.get(profile, (1,))))


def row_key(cfg: Any) -> tuple[str, str, str | None]:
    """(family, variant, weighting) of a run."""
    reg = cfg.regularizer
    return (cfg.model.family, "baseline", None) if reg is None else (cfg.model.family, reg.name, reg.weighting.kind)


def finetune_table(results: list[RunResult]) -> Any:
    """DataFrame: one row per (family, variant, weighting) with each metric's mean and std over seeds, and the
    paired difference to the baseline fine-tune of the same family and seed (mean, standard error, paired t-test p,
    direction word); see :mod:`..core.compare`."""
    values: dict[tuple, dict[int, dict]] = {}
    for r in results:
        values.setdefault(row_key(r.config), {})[int(r.config.train.seed)] = r.metrics
    values = dict(sorted(values.items(), key=lambda kv: str(kv[0])))
    long = compare(values, METRICS, EDM_GLOSSARY, reference=lambda key: (key[0], "baseline", None))
    table = wide(long, ("family", "variant", "weighting"))
    table["weighting"] = table["weighting"].fillna("-")
    return table


def headline(table: Any) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """(headline, glossary): ``<family>_<variant>[_<weighting>]_<metric>`` = the mean over seeds."""
    labels = ["_".join(p for p in parts if p != "-") for parts in zip(table["family"], table["variant"],
                                                                      table["weighting"], strict=True)]
    return headline_from_table(table, labels, METRICS, EDM_GLOSSARY)


def sample_figure(results: list[RunResult], variant: str, weighting: str | None, nrow: int = 4,
                  count: int = 16) -> plt.Figure:
    """Samples of one regularizer and weighting (first seed): panel (a) VE-EDM, (b) VP-EDM, like Figs. 3-10."""
    picks = {}
    for r in results:
        family, v, w = row_key(r.config)
        if v == variant and w == weighting and family not in picks:
            picks[family] = r
    families = [a for a in FAMILY_TITLES if a in picks]
    if not families:
        raise ValueError(f"no run of {variant!r} / {weighting!r} among the results")
    fig, axes = plt.subplots(1, len(families), figsize=(3.2 * len(families), 3.4), squeeze=False)
    for k, (ax, family) in enumerate(zip(axes[0], families, strict=True)):
        images = picks[family].samples[:count]
        grid = image_grid(to_uint8(images), nrow=min(nrow, len(images)))
        ax.imshow(np.asarray(grid).squeeze(), cmap="gray" if grid.ndim == 2 or grid.shape[-1] == 1 else None)
        ax.set_title(f"({chr(ord('a') + k)}) {FAMILY_TITLES[family]}", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{variant}" + (f", {weighting}" if weighting else ""), fontsize=10)
    fig.tight_layout()
    return fig


def samples_tensor(results: list[RunResult]) -> torch.Tensor:
    """Every run's samples stacked (runs, N, C, H, W): for checks and custom plots."""
    return torch.stack([r.samples for r in results])
