"""Figures and ``metrics.json`` of the toy experiments (paper Figs. 1-2 and the natural-image spectra)."""

from __future__ import annotations

import os
from typing import Any

import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import torch

from ..config import save_config
from ..reporting import save_labelled, write_metrics
from ..spectral import fit_power_law_slope, high_frequency_energy_ratio

LABELS = {"baseline": "baseline (MSE)", "amp": "+amplitude (Eq. 14)", "amp_phase": "+amp-phase (Eq. 15)",
          "haar": "+Haar (Eq. 16)", "bior1.3": "+bior1.3 (Eq. 16)"}
PATCH_STAND_IN = "scikit-image photo/texture patches, not AFHQ/FFHQ"


def image_grid(x: torch.Tensor, rows: int, cols: int, pad: int = 2) -> np.ndarray:
    """Tile the first rows*cols images of (B, 1, H, W) into one (rows (H+pad), cols (W+pad)) array, pad = NaN."""
    n, _, H, W = x.shape
    grid = np.full((rows * (H + pad) - pad, cols * (W + pad) - pad), np.nan)
    for k in range(min(n, rows * cols)):
        r, c = divmod(k, cols)
        grid[r * (H + pad):r * (H + pad) + H, c * (W + pad):c * (W + pad) + W] = x[k, 0].numpy()
    return grid


def sample_figure(results: dict[str, Any], rows: int = 4, cols: int = 4) -> plt.Figure:
    """Fig. 1: (a) ground truth, then one panel per variant, each a grid of samples from the first seed."""
    cfg = results["config"]
    seed = cfg.seeds[0]
    panels = [("ground truth", results["reference"])]
    panels += [(LABELS[v], results["runs"][(v, seed)]["samples"]) for v in cfg.variants]
    n_show = min(rows * cols, *(len(x) for _, x in panels))
    rows = -(-n_show // cols)  # ceil: every panel shows the same number of images
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 0.75 * rows + 0.9), layout="constrained")
    cmap = plt.get_cmap("gray").copy()
    cmap.set_bad("white")
    for k, (ax, (title, x)) in enumerate(zip(np.atleast_1d(axes), panels)):
        ax.imshow(image_grid(x[:n_show], rows, cols), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(f"({chr(97 + k)}) {title}", fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{cfg.dataset}: samples (seed {seed}, {cfg.steps} steps)", fontsize=10)
    return fig


def spectrum_figure(results: dict[str, Any], loglog: bool = False) -> plt.Figure:
    """Fig. 2: radially averaged power spectra (log power), ground truth vs each variant; mean, min-max over seeds."""
    cfg = results["config"]
    f = results["freqs"].numpy()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(f[1:], results["reference_power"].numpy()[1:], "k-", lw=2, label="ground truth")
    for v in cfg.variants:
        p = np.stack([results["runs"][(v, s)]["power"].numpy() for s in cfg.seeds])[:, 1:]  # (S, n-1)
        logp = np.log10(p)
        (line,) = ax.plot(f[1:], 10 ** logp.mean(0), lw=1.5, label=LABELS[v])
        if len(cfg.seeds) > 1:
            ax.fill_between(f[1:], p.min(0), p.max(0), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_yscale("log")
    if loglog:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.axhline(cfg.log_floor, color="0.6", ls=":", lw=1, label=f"floor {cfg.log_floor:g}")
    ax.set_xlabel("spatial frequency (cycles / pixel)")
    ax.set_ylabel("radially averaged power")
    n = len(cfg.seeds)
    ax.set_title(f"power spectra, mean over {n} seed{'s' * (n > 1)}" + (" (band: min-max)" if n > 1 else ""),
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.subplots_adjust(bottom=0.2)  # room for the profile label under the x label
    return fig


def toy_metrics(results: dict[str, Any]) -> dict[str, float]:
    """Headline numbers: per variant log distance, and for checkerboards valid fraction and binariness."""
    cfg, summ = results["config"], results["summary"]
    head: dict[str, float] = {}
    for v in cfg.variants:
        head[f"{v}_log_distance"] = summ[v]["log_distance"]["mean"]
        head[f"{v}_seconds_per_step"] = summ[v]["seconds_per_step"]["mean"]
        if cfg.dataset == "checkerboard":
            head[f"{v}_valid_fraction"] = summ[v]["valid_fraction"]["mean"]
            head[f"{v}_binariness"] = summ[v]["binariness"]["mean"]
        if v != "baseline" and "baseline" in cfg.variants:
            head[f"{v}_over_baseline_log_distance"] = summ[v]["over_baseline_log_distance"]
    if "ap_over_baseline_log_distance" not in head and "amp_phase_over_baseline_log_distance" in head:
        head["ap_over_baseline_log_distance"] = head["amp_phase_over_baseline_log_distance"]
    return head


def spectra_metrics(results: dict[str, Any], cutoff: float = 0.25) -> dict[str, dict[str, float]]:
    """Power-law slope of each spectrum and its power above ``cutoff`` cycles/pixel relative to ground truth."""
    cfg, f, p_ref = results["config"], results["freqs"], results["reference_power"]
    out = {"ground_truth": {"slope": fit_power_law_slope(f, p_ref, fmin=1 / cfg.size), "hf_energy_ratio": 1.0}}
    for v in cfg.variants:
        ps = [results["runs"][(v, s)]["power"] for s in cfg.seeds]
        out[v] = {"slope": float(np.mean([fit_power_law_slope(f, p, fmin=1 / cfg.size) for p in ps])),
                  "hf_energy_ratio": float(np.mean([high_frequency_energy_ratio(f, p, p_ref, cutoff) for p in ps]))}
    return out


def write_report(results: dict[str, Any], out_dir: str | os.PathLike,
                 notebook: str | None = None) -> dict[str, plt.Figure]:
    """Save the figures (PNG+PDF, labelled) and ``metrics.json`` of a toy experiment; return the figures."""
    cfg = results["config"]
    checker = cfg.dataset == "checkerboard"
    stand_in = None if checker else PATCH_STAND_IN
    notebook = notebook or ("02_checkerboard_toy" if checker else "03_power_spectra")
    figs = {"fig1_samples": sample_figure(results), "fig2_power_spectra": spectrum_figure(results, loglog=not checker)}
    for name, fig in figs.items():
        save_labelled(fig, out_dir, name, cfg.profile, stand_in=stand_in)
    head = toy_metrics(results)
    details: dict[str, Any] = {
        "summary": results["summary"],
        "runs": {f"{v}_seed{s}": r["metrics"] for (v, s), r in results["runs"].items()},
        "spectrum": {"freqs": results["freqs"].tolist(), "ground_truth": results["reference_power"].tolist(),
                     **{f"{v}_seed{s}": r["power"].tolist() for (v, s), r in results["runs"].items()}},
    }
    if checker and "ap_over_baseline_log_distance" in head:
        details["ap_over_baseline_log_distance"] = head["ap_over_baseline_log_distance"]
    if not checker:
        details["power_law"] = spectra_metrics(results)
        head.update({f"{v}_hf_energy_ratio": details["power_law"][v]["hf_energy_ratio"] for v in cfg.variants})
    save_config(cfg, os.path.join(out_dir, "config.json"))
    write_metrics(out_dir, notebook, cfg.profile, head, stand_in=stand_in, **details)
    return figs
