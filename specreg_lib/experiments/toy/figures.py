"""Figures and summary tables of the toy experiments (paper Figs. 1-2, natural-image spectra).

Input: the ``RunResult`` list of a sweep over ``regularizer`` x seeds. Output: matplotlib figures and plain
dicts; saving and labelling them is the caller's (the notebook's) job.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from ...data.seed_images import image_grid
from ...metrics import fit_power_law_slope, floored_spectrum, high_frequency_energy_ratio
from ..core.compare import describe
from ..core.runs import RunResult
from .experiment import TOY_GLOSSARY, ToyConfig, reference

LABELS = {"baseline": "baseline (MSE)", "amp": "+amplitude (Eq. 14)", "amp_phase": "+amp-phase (Eq. 15)",
          "haar": "+Haar (Eq. 16)", "bior1.3": "+bior1.3 (Eq. 16)"}
PATCH_STAND_IN = "scikit-image photo/texture patches, not AFHQ/FFHQ"


def variant(cfg: ToyConfig) -> str:
    """The variant name of a config: "baseline" or the regularizer's name."""
    return "baseline" if cfg.regularizer is None else cfg.regularizer.name


class ToyResults:
    """A sweep's results indexed by (variant, seed), plus the ground truth they are compared with."""

    def __init__(self, results: list[RunResult]) -> None:
        if not results:
            raise ValueError("no results to show")
        self.runs = {(variant(r.config), int(r.config.train.seed)): r for r in results}
        self.variants = list(dict.fromkeys(v for v, _ in self.runs))
        self.seeds = sorted({s for _, s in self.runs})
        missing = [(v, s) for v in self.variants for s in self.seeds if (v, s) not in self.runs]
        if missing:
            raise ValueError(f"every variant needs every seed; missing {missing}")
        self.config: ToyConfig = results[0].config
        self.reference = reference(self.config)
        self.freqs, self.reference_power = floored_spectrum(self.reference, self.config.evaluate.log_floor)

    @property
    def checkerboard(self) -> bool:
        return self.config.data.dataset == "checkerboard"

    def stand_in(self) -> str | None:
        """What replaces the paper's data here (None for the checkerboards, which are the paper's own toy)."""
        return None if self.checkerboard else PATCH_STAND_IN


def sample_figure(res: ToyResults, rows: int = 4, cols: int = 4) -> plt.Figure:
    """Fig. 1: (a) ground truth, then one panel per variant, each a grid of samples from the first seed."""
    seed = res.seeds[0]
    panels = [("ground truth", res.reference)]
    panels += [(LABELS.get(v, v), res.runs[(v, seed)].samples) for v in res.variants]
    n_show = min(rows * cols, *(len(x) for _, x in panels))
    rows = -(-n_show // cols)  # ceil: every panel shows the same number of images
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 0.75 * rows + 0.9), layout="constrained")
    cmap = plt.get_cmap("gray").copy()
    cmap.set_bad("white")
    for k, (ax, (title, x)) in enumerate(zip(np.atleast_1d(axes), panels, strict=True)):
        grid = image_grid(x[:n_show].double(), cols, padding=2, pad_value=np.nan, border=False)  # NaN gaps: white
        ax.imshow(grid, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"({chr(97 + k)}) {title}", fontsize=10)
        ax.axis("off")
    steps = res.runs[(res.variants[0], seed)].step
    fig.suptitle(f"{res.config.data.dataset}: samples (seed {seed}, {steps} steps)", fontsize=10)
    return fig


def spectrum_figure(res: ToyResults) -> plt.Figure:
    """Fig. 2: radially averaged power spectra, ground truth vs each variant; mean over seeds, min-max band.

    Log-log for natural images (their power law is a line), log-linear for the checkerboards.
    """
    f = res.freqs.numpy()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(f[1:], res.reference_power.numpy()[1:], "k-", lw=2, label="ground truth")
    for v in res.variants:
        p = np.stack([res.runs[(v, s)].arrays["power"].numpy() for s in res.seeds])[:, 1:]  # (S, n-1)
        (line,) = ax.plot(f[1:], 10 ** np.log10(p).mean(0), lw=1.5, label=LABELS.get(v, v))
        if len(res.seeds) > 1:
            ax.fill_between(f[1:], p.min(0), p.max(0), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_yscale("log")
    if not res.checkerboard:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    floor = res.config.evaluate.log_floor
    ax.axhline(floor, color="0.6", ls=":", lw=1, label=f"floor {floor:g}")
    ax.set_xlabel("spatial frequency (cycles / pixel)")
    ax.set_ylabel("radially averaged power")
    n = len(res.seeds)
    ax.set_title(f"power spectra, mean over {n} seed{'s' * (n > 1)}" + (" (band: min-max)" if n > 1 else ""),
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.subplots_adjust(bottom=0.2)  # room for the profile label under the x label
    return fig


def summarize(res: ToyResults) -> dict[str, Any]:
    """Per variant: mean and std over seeds of every scalar metric; per-seed ratios to the baseline."""
    out: dict[str, Any] = {}
    for v in res.variants:
        ms = [res.runs[(v, s)].metrics for s in res.seeds]
        keys = [k for k, val in ms[0].items() if isinstance(val, int | float) and not isinstance(val, bool)
                and k not in ("seed", "steps")]
        out[v] = {k: {"mean": float(np.mean([m[k] for m in ms])), "std": float(np.std([m[k] for m in ms]))}
                  for k in keys}
        out[v]["per_seed_log_distance"] = [m["log_distance"] for m in ms]
        if v != "baseline" and "baseline" in res.variants:
            base = [res.runs[("baseline", s)].metrics["log_distance"] for s in res.seeds]
            out[v]["over_baseline_log_distance"] = float(np.mean(out[v]["per_seed_log_distance"]) / np.mean(base))
            out[v]["per_seed_ratio"] = [a / b for a, b in zip(out[v]["per_seed_log_distance"], base, strict=True)]
    return out


def power_law(res: ToyResults, cutoff: float = 0.25) -> dict[str, dict[str, float]]:
    """Power-law slope of each spectrum and its power above ``cutoff`` cycles/pixel relative to ground truth."""
    f, p_ref, size = res.freqs, res.reference_power, res.config.data.size
    out = {"ground_truth": {"slope": fit_power_law_slope(f, p_ref, fmin=1 / size), "hf_energy_ratio": 1.0}}
    for v in res.variants:
        ps = [res.runs[(v, s)].arrays["power"] for s in res.seeds]
        out[v] = {"slope": float(np.mean([fit_power_law_slope(f, p, fmin=1 / size) for p in ps])),
                  "hf_energy_ratio": float(np.mean([high_frequency_energy_ratio(f, p, p_ref, cutoff) for p in ps]))}
    return out


def headline(res: ToyResults) -> tuple[dict[str, float], dict[str, dict[str, str]], dict[str, Any]]:
    """(headline numbers, their glossary, details) for a metrics file: per variant log distance and ratio,
    for checkerboards valid fraction and binariness, for patches the high-frequency energy ratio."""
    summ = summarize(res)
    head: dict[str, float] = {}
    metric_of: dict[str, str] = {}
    for v in res.variants:  # the ratios first: they are what a summary line should show
        if "over_baseline_log_distance" in summ[v]:
            head[f"{v}_over_baseline_log_distance"] = summ[v]["over_baseline_log_distance"]
            metric_of[f"{v}_over_baseline_log_distance"] = "over_baseline_log_distance"
    for v in res.variants:
        names = ["log_distance", "valid_fraction", "binariness"] if res.checkerboard else ["log_distance"]
        for k in [*names, "seconds_per_step"]:
            head[f"{v}_{k}"], metric_of[f"{v}_{k}"] = summ[v][k]["mean"], k
    details: dict[str, Any] = {
        "summary": summ,
        "runs": {f"{v}_seed{s}": r.metrics for (v, s), r in res.runs.items()},
        "spectrum": {"freqs": res.freqs.tolist(), "ground_truth": res.reference_power.tolist(),
                     **{f"{v}_seed{s}": r.arrays["power"].tolist() for (v, s), r in res.runs.items()}},
    }
    if not res.checkerboard:
        details["power_law"] = power_law(res)
        for v in res.variants:
            head[f"{v}_hf_energy_ratio"] = details["power_law"][v]["hf_energy_ratio"]
            metric_of[f"{v}_hf_energy_ratio"] = "hf_energy_ratio"
    glossary = {}
    for name, k in metric_of.items():
        v = name[: -len(k) - 1]
        glossary[name] = describe(LABELS.get(v, v), k, TOY_GLOSSARY, len(res.seeds))
    return head, glossary, details
