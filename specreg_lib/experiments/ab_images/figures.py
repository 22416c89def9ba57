"""The image A/B study in Table 1's layout, its figures, and its conclusion in words generated from the numbers.

Input: :func:`.study.ab_table`'s long table per stand-in (one row per variant and metric: mean over seeds, paired
difference to the baseline with SE and p, noise floor), the rule's record (:func:`.study.choice`), the calibration
and the finished evaluation runs. Output: pandas tables, matplotlib figures and plain sentences; saving them is the
notebook's job (notebooks/10_ab_images.ipynb). Nothing here writes a file or trains a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from ...errors import InputError
from ..core.compare import describe, detected, direction, finite
from ..core.figures import screen_panel
from ..core.runs import RunResult, run, run_state
from ..core.study import commands_left as study_commands_left
from ..core.study import read_record
from .experiment import (
    AB_GLOSSARY,
    AB_IMAGES,
    STANDINS,
    TRAIN_LOG_DISTANCE,
    mean_spectrum,
    reference_images,
    train_reference_spectrum,
)
from .plan import BASELINE, KINDS, AbImagesPlan, ab_images_plan, study_dir
from .study import choice, evaluate_configs, lambdas_of, noise_floors, variant_name

ALPHA = 0.05  # the p-value a difference must stay below (docs/ab_images.md, Protocol step 5)
TABLE_METRICS = ("log_distance", "train_log_distance", "feature_distance", "hf_error", "laplacian_error",
                 "copy_share")  # the ratios' information is in their errors (|ln ratio|), which have a direction
CONTROL = "pixel_l1"  # the peer that asks "is the effect only an L1 term?"
SMOKE_SUBSET = {"kinds": ("haar",), "peers": ("pixel_l1", "focal_freq")}  # the notebook's smoke variants
N_SHOWN = 16  # images per variant in the sample grids


def notebook_plan(profile: str, kinds: list[str] | None = None, peers: list[str] | None = None) -> AbImagesPlan:
    """The notebook's plan: ``profile``'s, with the given kinds / peers; smoke defaults to :data:`SMOKE_SUBSET`
    (one kind, the control and one peer: every stage in about half a minute)."""
    subset = dict(SMOKE_SUBSET) if profile == "smoke" else {}
    subset.update({k: tuple(v) for k, v in {"kinds": kinds, "peers": peers}.items() if v is not None})
    return ab_images_plan(profile, **subset)


class ResultsElsewhere(InputError, RuntimeError):
    """A notebook asked to rebuild committed study results on a machine that holds none of the study's runs."""


def refuse_to_erase(out_dir: str | Path, status: Mapping[str, Any], profile: str) -> None:
    """Stop before a cpu notebook run replaces results made elsewhere with empty tables: when ``out_dir`` holds a
    metrics.json with evaluation rows and this machine holds no finished evaluation run (the image study's run
    folders are not archived: its tables need each run's power spectrum). Smoke always rebuilds."""
    if profile == "smoke" or status["stages"]["evaluate"]["evaluations_done"] > 0:
        return
    path = Path(out_dir) / "metrics.json"
    old = read_record(path) if path.is_file() else None
    if old and any(old.get("tables", {}).values()):
        raise ResultsElsewhere(
            f"{path} holds the {profile} study's results from the machine that ran it ({old.get('written_at')}), and "
            "no evaluation run of the study is under runs_root here, so this run would replace them with empty "
            f"tables. Run the study first (specreg ab-images --profile {profile}; --status says what is left), point "
            "runs_root at its run folders, or pass another out_dir to see the status alone")


def stand_in_label(plan: AbImagesPlan, dataset: str) -> str:
    """What a figure of ``dataset`` shows: an offline stand-in (never CIFAR-10, FFHQ or ImageNet)."""
    return f"{dataset} at {plan.resolution} px ({STANDINS[dataset].description}), not the paper's datasets"




def _num(x: Any, fmt: str = ".4g") -> str:
    return format(float(x), fmt) if finite(x) else "-"


def _is_kind(variant: str) -> bool:
    """A variant of one of the paper's losses (Eqs. 14-16), not a peer and not the baseline."""
    return variant.split("/")[0] in KINDS


# -- Table 1's layout -----------------------------------------------------------------------------------------


def _delta(r: Mapping[str, Any], alpha: float) -> str:
    """"paired difference ± SE, p" with ``*`` for an effect; "(1 pair)" where no SE exists."""
    d, se, p = r["diff"], r["diff_se"], r["p"]
    if not finite(d):
        return ""
    return (f"{d:+.2g}" + (f" ± {se:.2g}" if finite(se) else " (1 pair)") + (f", p={p:.2g}" if finite(p) else "")
            + (" *" if detected(r, alpha) else ""))


def table1_layout(table: Any, train_data: Mapping[str, Mapping[str, float]] | None = None,
                  alpha: float = ALPHA) -> Any:
    """Table 1's layout per stand-in: one row per variant with its strength ρ, λ, guard flag and seeds; per metric
    of :data:`TABLE_METRICS` the mean over seeds and a ``Δ`` cell "paired difference ± SE, p" (``*``: an effect,
    :func:`detected`); then a row of the noise floors (held-out data against the reference) and, given
    ``train_data`` (stand-in -> ``noise_floors(...)["train_data"]``), a row of what fresh training data scores."""
    import pandas as pd

    if not len(table):
        return pd.DataFrame()
    metrics = [m for m in TABLE_METRICS if m in set(table["metric"])]
    rows = []
    for dataset in dict.fromkeys(table["dataset"]):
        part = table[table["dataset"] == dataset]
        for variant in dict.fromkeys(part["variant"]):
            cells = part[part["variant"] == variant].set_index("metric")
            first = cells.iloc[0]
            row = {"stand-in": dataset, "method": variant, "ρ": _num(first["strength"], "g"),
                   "λ": _num(first["lambda"], "g"),
                   "guard": "failed" if first["guard_failed"] is True else "", "seeds": int(cells["seeds"].max())}
            for m in metrics:
                r = cells.loc[m] if m in cells.index else None
                row[m] = "" if r is None else _num(r["mean"])
                row[f"Δ{m}"] = "" if r is None or variant == BASELINE else _delta(r, alpha)
            rows.append(row)
        floors = part.groupby("metric", sort=False)["floor"].first()
        blank = {"ρ": "", "λ": "", "guard": "", "seeds": "", **{f"Δ{m}": "" for m in metrics}}
        rows.append({"stand-in": dataset, "method": "noise floor (held-out data)", **blank,
                     **{m: _num(floors.get(m), ".2g") for m in metrics}})
        if train_data is not None and dataset in train_data:
            rows.append({"stand-in": dataset, "method": "train_data (fresh training images)", **blank,
                         **{m: _num(train_data[dataset].get(m), ".2g") for m in metrics}})
    out = pd.DataFrame(rows)
    return out[["stand-in", "method", "ρ", "λ", "guard", "seeds", *[c for m in metrics for c in (m, f"Δ{m}")]]]


def calibration_table(plan: AbImagesPlan, root: str | Path) -> Any:
    """Per stand-in and regularized variant: the strength of the paper's λ = 1 (r = ||grad w L_S|| / ||grad
    L_EDM|| at the pretrained net) and the λ of each screened strength ρ (calibration-<dataset>.json; stand-ins
    not calibrated yet are left out)."""
    import pandas as pd

    rows = []
    for d in plan.datasets:
        if lambdas_of(plan, root, d) is None:  # absent, or made under another plan / pretrained net
            continue
        record = read_record(study_dir(plan, root) / f"calibration-{d}.json")
        for variant, r in record["grad_ratio"].items():
            rows.append({"stand-in": d, "variant": variant, "strength of λ=1": f"{r:.2g}",
                         **{f"λ at ρ={rho:g}": f"{record['lambdas'][variant][str(rho)]:g}" for rho in plan.strengths}})
    return pd.DataFrame(rows)


# -- the conclusion -------------------------------------------------------------------------------------------


def _word(metric: str, diff: float, p: float, alpha: float) -> str:
    return direction(diff, p, AB_GLOSSARY.get(metric, ("", "neither"))[1], alpha)


def _variant_sentence(dataset: str, part: Any, alpha: float) -> tuple[str, bool]:
    records = [r for r in part.to_dict("records") if r["metric"] in TABLE_METRICS]
    r0, seeds = records[0], int(part["seeds"].max())
    head = (f"{dataset}, {r0['variant']} (ρ={_num(r0['strength'], 'g')}, λ={_num(r0['lambda'], 'g')}), "
            f"{seeds} seed{'s' * (seeds != 1)}: ")
    found = [r for r in records if detected(r, alpha)]
    if not found:
        why = " (one seed: a paired test needs at least two)" if seeds < 2 else ""
        return head + f"no effect detectable at this scale{why}.", False
    return head + "; ".join(f"{r['metric']} {_word(r['metric'], r['diff'], r['p'], alpha)} (Δ {r['diff']:+.2g} ± "
                            f"{r['diff_se']:.2g}, p = {r['p']:.2g}, floor {r['floor']:.2g})" for r in found) + ".", True


def _guard_sentence(dataset: str, table: Any) -> str:
    rows = table[table["variant"] != BASELINE]
    flags = rows.groupby("variant", sort=False)["guard_failed"].first()
    failed = [v for v, f in flags.items() if f is True]
    if not failed and {"candidates", "screened"} <= set(rows.columns) and \
            all(c == s for c, s in zip(rows["candidates"], rows["screened"], strict=True)):
        fd = table[(table["metric"] == "feature_distance") & (table["variant"] == BASELINE)]
        scale = "" if not len(fd) else (f" (its noise floor {_num(fd['floor'].iloc[0], '.2g')} is "
                                        f"{fd['floor'].iloc[0] / fd['mean'].iloc[0]:.0%} of the baseline's "
                                        f"{_num(fd['mean'].iloc[0], '.3g')})")
        return (f"{dataset} guard: feature_distance within the baseline's plus its noise floor admitted every "
                f"screened strength of every variant{scale}, so on {dataset} the rule chose by log_distance alone.")
    if not failed:
        return (f"{dataset} guard: every variant had a screened strength with feature_distance within the "
                "baseline's plus its noise floor.")
    return (f"{dataset} guard: the screen's feature_distance guard failed for {', '.join(failed)} (no strength kept "
            "feature_distance within the baseline's plus its noise floor), so the smallest strength was evaluated.")


def _versus_sentence(dataset: str, rows: Any) -> str | None:
    """The best paper kind against the best peer and the control on mean log_distance (unpaired: the gap of two
    seed means, set against the log_distance noise floor)."""
    ld = rows[rows["metric"] == "log_distance"]
    ld = ld[[finite(v) for v in ld["mean"]]]
    kinds = ld[[_is_kind(v) for v in ld["variant"]]]
    peers = ld[[not _is_kind(v) and v.split("/")[0] != CONTROL for v in ld["variant"]]]
    control = ld[[v.split("/")[0] == CONTROL for v in ld["variant"]]]
    if not len(kinds) or not (len(peers) or len(control)):
        return None
    best = kinds.loc[kinds["mean"].idxmin()]
    floor = best["floor"]
    parts = []
    for what, group in (("the best peer", peers), ("the control", control)):
        if len(group):
            other = group.loc[group["mean"].idxmin()]
            gap = float(best["mean"] - other["mean"])
            side = "within" if not finite(floor) or abs(gap) <= floor else "beyond"
            parts.append(f"{abs(gap):.2g} {'below' if gap < 0 else 'above'} {what} {other['variant']} "
                         f"({other['mean']:.4g}; {side} the noise floor {_num(floor, '.2g')})")
    text = (f"{dataset}, log_distance (lower is better): the best paper kind {best['variant']} "
            f"({best['mean']:.4g}) is " + " and ".join(parts) + "; a gap of seed means, not a paired test.")
    train = rows[(rows["metric"] == TRAIN_LOG_DISTANCE) & (rows["variant"] == best["variant"])]
    if len(train) and detected(train.iloc[0]) and train.iloc[0]["diff"] > 0:
        text += (f" But {best['variant']} is farther than the baseline from the TRAINING images' spectrum "
                 f"(train_log_distance Δ {train.iloc[0]['diff']:+.2g}): part of its lead is power the training set "
                 "does not have.")
    return text


def conclusion(tables: Mapping[str, Any], alpha: float = ALPHA) -> str:
    """The study's conclusion as plain sentences generated from ``tables`` (stand-in -> :func:`.study.ab_table`):
    per stand-in, how many variants show an effect and how many tests would pass by chance; per variant, the
    metrics whose paired difference to the baseline exceeds its noise floor with p < alpha, in which direction
    (the glossary's better / worse) over how many seeds, or "no effect detectable at this scale"; the variants
    whose screen failed the guard; the best paper kind against the best peer and the control on log_distance."""
    lines = []
    for dataset, table in tables.items():
        rows = table[table["variant"] != BASELINE] if len(table) else table
        if not len(rows):
            lines.append(f"{dataset}: no finished evaluation runs yet, nothing to conclude.")
            continue
        sentences = [_variant_sentence(dataset, part, alpha) for _, part in rows.groupby("variant", sort=False)]
        in_table = rows[rows["metric"].isin(TABLE_METRICS)]
        tests = int(sum(finite(p) for p in in_table["p"]))
        n_eff = sum(found for _, found in sentences)
        lines.append(f"{dataset}: {n_eff} of {len(sentences)} variants differ from the baseline beyond the noise floor "
                     f"with p < {alpha:g}" + (f"; of the {tests} paired tests, about {alpha * tests:.1f} would pass "
                                              "by chance alone." if tests else
                                              "; no paired test was possible (fewer than two seeds)."))
        lines += [s for s, _ in sentences]
        lines.append(_guard_sentence(dataset, table))
        versus = _versus_sentence(dataset, rows)
        if versus:
            lines.append(versus)
    return "\n".join(lines) if lines else "No stand-in given: nothing to conclude."


def headline(tables: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """(headline, glossary) for metrics.json: ``<stand-in>_<variant>_<metric>`` = the mean over seeds (finite ones,
    :data:`TABLE_METRICS`) and ``effects_detected`` = the (stand-in, variant, metric) rows :func:`detected`."""
    head, gloss, effects = {}, {}, 0
    for dataset, table in tables.items():
        for r in table.to_dict("records") if len(table) else []:
            if r["metric"] not in TABLE_METRICS:
                continue
            effects += r["variant"] != BASELINE and detected(r)
            if finite(r["mean"]):
                key = f"{dataset}_{r['variant'].replace('/', '_')}_{r['metric']}"
                head[key] = float(r["mean"])
                gloss[key] = describe(f"{dataset}, {r['variant']}", r["metric"], AB_GLOSSARY, int(r["seeds"]))
    head["effects_detected"] = float(effects)
    gloss["effects_detected"] = {"meaning": "(stand-in, variant, metric) paired differences to the baseline beyond "
                                 f"the noise floor with p < {ALPHA:g}", "better": "neither"}
    return head, gloss


def train_data(plan: AbImagesPlan, root: str | Path, tables: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Stand-in -> what fresh training-source images score against the held-out reference (``noise_floors``'s
    "train_data"), for the stand-ins with evaluation rows only (so a study without runs builds nothing); against the
    training reference (TRAIN_LOG_DISTANCE) that is the table's floor of that metric (``study.train_floor``)."""
    out = {}
    for d, t in tables.items():
        if len(t):
            own = t.loc[t["metric"] == TRAIN_LOG_DISTANCE, "floor"]
            out[d] = {**noise_floors(plan, Path(root), d, write=False)["train_data"],
                      **({TRAIN_LOG_DISTANCE: float(own.iloc[0])} if len(own) else {})}
    return out


def difference_spread(table: Any, metric: str = "log_distance") -> dict[str, float] | None:
    """How far the variants are from the baseline in ``metric``: min and max |paired difference| and the noise
    floor (None without a finite difference)."""
    part = table[(table["metric"] == metric) & (table["variant"] != BASELINE)] if len(table) else table
    diffs = [abs(float(d)) for d in part["diff"] if finite(d)] if len(part) else []
    if not diffs:
        return None
    return {"min": min(diffs), "max": max(diffs), "floor": float(part["floor"].iloc[0])}


# -- figures --------------------------------------------------------------------------------------------------


def screen_figure(plan: AbImagesPlan, root: str | Path, dataset: str,
                  metrics: tuple[str, str] = ("log_distance", "feature_distance")) -> plt.Figure | None:
    """The screen (seed 0) per regularized variant: each metric against the strength ρ (log x), the baseline
    (dashed), the guard's feature_distance limit (dotted: baseline + floor), the rule's choice (red ring);
    None while the screen of ``dataset`` is not complete."""
    record = choice(plan, Path(root), dataset, write=False)
    if record is None:
        return None
    variants = list(record["chosen"])
    ncol = min(6, len(variants))
    blocks = -(-len(variants) // ncol)
    fig, axes = plt.subplots(len(metrics) * blocks, ncol, figsize=(2.2 * ncol, 1.9 * len(metrics) * blocks),
                             squeeze=False)
    for j, name in enumerate(variants):
        v, w = name.split("/")
        pts = sorted((s["strength"], s) for s in record["screen"] if s["variant"] == v and s["weighting"] == w)
        rhos, chosen = [rho for rho, _ in pts], record["chosen"][name]
        for i, m in enumerate(metrics):
            ax = axes[(j // ncol) * len(metrics) + i][j % ncol]
            screen_panel(ax, rhos, [s.get(m) for _, s in pts], record["baseline"][m], chosen["strength"],
                         chosen["limit"] if m == "feature_distance" else None)
            ax.set_ylabel(m, fontsize=7)
            if i == 0:
                ax.set_title(f"{name}: ρ={chosen['strength']:g}" + (" (guard failed)" if chosen["guard_failed"]
                                                                    else ""), fontsize=7)
            if i == len(metrics) - 1:
                ax.set_xlabel("strength ρ", fontsize=7)
    for k in range(len(variants), blocks * ncol):  # empty cells of the last block
        for i in range(len(metrics)):
            axes[(k // ncol) * len(metrics) + i][k % ncol].axis("off")
    axes[len(metrics) - 1][0].legend(fontsize=5)
    fig.suptitle(f"{dataset}: screen on seed {plan.screen_seed} (lower is better for both)", fontsize=8)
    fig.tight_layout()
    return fig


def example_runs(plan: AbImagesPlan, root: str | Path, dataset: str) -> list[tuple[str, RunResult]]:
    """(variant, result) of the finished evaluation runs of the first evaluation seed of ``dataset``, baseline
    first, only re-read (a run that is not done is left out, never trained)."""
    configs = evaluate_configs(plan, Path(root), dataset, write=False) or []
    return [(variant_name(c), run(AB_IMAGES, c, root)) for c in configs if c.train.seed == plan.eval_seeds[0]
            and run_state(AB_IMAGES, c, root)[0] == "done"]


def _reference(plan: AbImagesPlan, dataset: str) -> Any:
    n = dict(plan.finetune).get("evaluate.n_reference", 1024)
    return reference_images(dataset, plan.resolution, n)


def samples_figure(plan: AbImagesPlan, root: str | Path, dataset: str) -> plt.Figure | None:
    """The first 16 samples of every variant (first evaluation seed, the same generation seeds for all) beside 16
    held-out reference images, 4 x 4 each; grey for the photos; None without a finished run."""
    from ...data.seed_images import image_grid

    runs = example_runs(plan, root, dataset)
    if not runs:
        return None
    panels = [("held-out reference", _reference(plan, dataset))] + [(v, r.samples) for v, r in runs]
    ncol = min(7, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(1.6 * ncol, 1.75 * nrow), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (name, x) in zip(axes.flat, panels, strict=False):
        x = ((x[:N_SHOWN].float().clamp(-1, 1) + 1) / 2).numpy()  # (n, C, H, W) in [0, 1]
        grid = image_grid(x, nrow=4, padding=1, pad_value=1.0)
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(name, fontsize=7)
    fig.suptitle(f"{dataset}: samples of training seed {plan.eval_seeds[0]}, generation seeds "
                 f"0-{min(N_SHOWN, len(runs[0][1].samples)) - 1}", fontsize=8)
    fig.tight_layout()
    return fig


# octaves of the radial frequency in cycles/px (the DC bin left out; 0.5 = Nyquist): where a spectrum is off
BANDS = ((0.0, 0.0625), (0.0625, 0.125), (0.125, 0.25), (0.25, 0.5))


def band_table(plan: AbImagesPlan, root: str | Path, dataset: str) -> Any:
    """Where each variant's spectrum is off, octave by octave: per variant (rows, the baseline first) and band of
    :data:`BANDS` (columns ``lo-hi``), the samples' power over the held-out reference's, as the geometric mean over
    the band's frequencies, then the mean over the finished evaluation seeds (column ``seeds``); 1 = the data's
    power. A term that adds power in every band lowers the log distance only where power is missing. Reads only;
    empty without a finished run."""
    import numpy as np
    import pandas as pd

    configs = [c for c in evaluate_configs(plan, Path(root), dataset, write=False) or []
               if run_state(AB_IMAGES, c, root)[0] == "done"]
    if not configs:
        return pd.DataFrame()
    freqs, ref = (a.numpy() for a in mean_spectrum(_reference(plan, dataset)))
    per_variant: dict[str, list[list[float]]] = {}
    for cfg in configs:
        power = run(AB_IMAGES, cfg, root).arrays["power"].numpy()
        per_variant.setdefault(variant_name(cfg), []).append(
            [float(np.exp(np.mean(np.log(power[m] / ref[m])))) for m in ((freqs > lo) & (freqs <= hi)
                                                                         for lo, hi in BANDS)])
    return pd.DataFrame([{"variant": v, "seeds": len(rows),
                          **{f"{lo:g}-{hi:g}": float(np.mean([r[i] for r in rows])) for i, (lo, hi) in
                             enumerate(BANDS)}} for v, rows in per_variant.items()])


def spectra_figure(plan: AbImagesPlan, root: str | Path, dataset: str) -> plt.Figure | None:
    """Radial power spectra (Hann window, 8-bit samples, as the metrics see them) of every variant's samples and
    of the held-out reference, log-log; beside them each spectrum over the reference's. None without a run."""
    runs = example_runs(plan, root, dataset)
    if not runs:
        return None
    images = _reference(plan, dataset)
    freqs, ref = mean_spectrum(images)
    ref = ref.numpy()
    train = train_reference_spectrum(dataset, plan.resolution, images.shape[0]).numpy()  # train_log_distance's
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.loglog(freqs[1:], ref[1:], color="k", lw=2, label="held-out reference")
    a.loglog(freqs[1:], train[1:], color="k", lw=1.2, ls=":", label="training source (fresh draw)")
    b.axhline(1.0, color="k", lw=2)
    b.loglog(freqs[1:], train[1:] / ref[1:], color="k", lw=1.2, ls=":")
    for i, (variant, r) in enumerate(runs):
        p = r.arrays["power"].numpy()  # tab20: 13 variants need more colours than the default cycle's 10
        style = {"color": "0.4", "ls": "--", "lw": 1.4} if variant == BASELINE else {"lw": 0.9,
                                                                                    "color": plt.cm.tab20(i % 20)}
        a.loglog(r.arrays["freqs"][1:], p[1:], label=variant, **style)
        b.loglog(r.arrays["freqs"][1:], p[1:] / ref[1:], **style)
    a.set(xlabel="frequency (cycles/px)", ylabel="power", title=f"{dataset}: radial power spectra")
    b.set(xlabel="frequency (cycles/px)", ylabel="power / reference's", title="over the reference (1 = same)")
    for ax in (a, b):  # plain tick labels: log axes' minor labels (3x10^-2, 4x10^-2, ...) run into each other
        ax.set_xticks([0.05, 0.1, 0.2, 0.4], ["0.05", "0.1", "0.2", "0.4"])
        ax.xaxis.set_minor_formatter(NullFormatter())
    b.set_yticks([0.5, 0.7, 1, 1.4, 2], ["0.5", "0.7", "1", "1.4", "2"])
    b.yaxis.set_minor_formatter(NullFormatter())
    a.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    return fig


# -- the ablation -------------------------------------------------------------------------------------------

# the rule's target and guard, and the independent high-frequency measure: on both stand-ins the evaluation found the
# Fourier kinds' effect there (docs/ab_images.md, Results), so a row that changes a term is read on it too
ABLATION_METRICS = ("log_distance", "feature_distance", "laplacian_error")


def ablation_layout(table: Any, alpha: float = ALPHA) -> Any:
    """One row per ablation row (``ablate.ablation_table``): its lambda and seeds, and per metric of
    :data:`ABLATION_METRICS` the mean and two ``Δ`` cells: against the variant at its chosen setting (what the change
    does) and against its reference baseline (what is left of the effect), "± SE, p", ``*`` for an effect."""
    import pandas as pd

    if not len(table):
        return pd.DataFrame()
    out = []
    for name, part in table.groupby("row", sort=False):
        row: dict[str, Any] = {"row": name, "λ": _num(part["lambda"].iloc[0], "g"), "seeds": int(part["seeds"].max())}
        for m in ABLATION_METRICS:
            cells = {r["against"]: r for r in part[part["metric"] == m].to_dict("records")}
            if not cells:
                continue
            row[m] = _num(next(iter(cells.values()))["mean"])
            row[f"Δ{m} vs variant"] = _delta(cells["variant"], alpha) if "variant" in cells else ""
            row[f"Δ{m} vs baseline"] = _delta(cells["reference"], alpha) if "reference" in cells else ""
        out.append(row)
    return pd.DataFrame(out)


def ablation_sentences(table: Any, alpha: float = ALPHA) -> str:
    """One sentence per ablation row, generated from the numbers: per metric of :data:`ABLATION_METRICS`, what the
    change does against the variant at its chosen setting, then what is left of the effect against the row's
    reference baseline (the baseline of the same length: for a length row the only like-for-like comparison), each
    "better" / "worse" with Δ ± SE, p and the floor where it is an effect (p < alpha and beyond the floor), else "no
    effect"."""
    if not len(table):
        return "No ablation run has finished yet."

    def clause(r: Mapping[str, Any]) -> str:
        m = r["metric"]
        if detected(r, alpha):
            return (f"{m} {_word(m, r['diff'], r['p'], alpha)} (Δ {r['diff']:+.2g} ± {r['diff_se']:.2g}, "
                    f"p = {r['p']:.2g}, floor {r['floor']:.2g})")
        return f"{m} no effect (Δ {r['diff']:+.2g}, p = {_num(r['p'], '.2g')}, floor {_num(r['floor'], '.2g')})"

    lines = []
    for name, part in table.groupby("row", sort=False):
        parts = []
        for against, words in (("variant", "against {} at its chosen setting"), ("reference", "against {}")):
            by = {r["metric"]: r for r in part[part["against"] == against].to_dict("records")}
            said = [clause(by[m]) for m in ABLATION_METRICS if m in by and finite(by[m]["diff"])]
            if said:
                parts.append(words.format(next(iter(by.values())).get("compared_with", against)) + ": "
                             + "; ".join(said))
        seeds = int(part["seeds"].max())
        lines.append(f"{name} ({seeds} seed{'s' * (seeds != 1)}), "
                     + (". Then, ".join(parts) if parts else "no paired difference yet") + ".")
    return "\n".join(lines)


# -- what is left ---------------------------------------------------------------------------------------------


def commands_left(status: Mapping[str, Any], runs_root: str = "checkpoints") -> list[str]:
    """The commands that finish the study from :func:`.status.ab_status` (``core.study.commands_left``)."""
    return study_commands_left("specreg ab-images", status, runs_root, "abi")
