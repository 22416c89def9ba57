"""The audio A/B study in Table 2's layout, its figures, and its conclusion in words generated from the numbers.

Input: :func:`.study.ab_table`'s long table (one row per variant, schedule and metric: mean over seeds, paired
difference to the baseline with SE and p, noise floor) and the rule's record (:func:`.study.choice`). Output:
pandas tables, matplotlib figures and plain sentences; saving them is the notebook's job
(notebooks/11_ab_audio.ipynb). Nothing here writes a file or trains a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from ..audio.figures import PAPER_TABLE2, STANDIN
from ..core.compare import describe, detected, direction, finite
from ..core.figures import screen_panel
from ..core.runs import RunResult, run, run_state
from ..core.study import commands_left as study_commands_left
from .plan import AB_AUDIO, BASELINE, AbAudioPlan
from .study import evaluate_configs

MULTIVOICE = ("multi-voice espeak-ng/flite speech and a 12 x 32 DiffWave pretrained here, not LJSpeech and LMNT's "
              "checkpoint")
ALPHA = 0.05  # the p-value a difference must stay below (docs/ab_audio.md, step 5)


def stand_in_label(plan: AbAudioPlan) -> str:
    """What the figures stand in for: the one-voice smoke corpus or the multi-voice cpu corpus (never LJSpeech)."""
    return STANDIN if plan.corpus == "standin" else MULTIVOICE




def _lam(lam: Any) -> str:
    return "-" if not finite(lam) else f"{lam:g}"




def table2_layout(table: Any, alpha: float = ALPHA) -> Any:
    """Table 2's layout: one row per (schedule, variant) with its lambda and seeds; per metric the mean over seeds
    (the paper's Table 2 mean in brackets where it has the same variant and lambda) and a ``Δ`` cell "paired
    difference ± SE, p" with ``*`` when it is an effect (:func:`detected`); a last row per schedule: the floors."""
    import pandas as pd

    if not len(table):
        return pd.DataFrame()
    metrics = list(dict.fromkeys(table["metric"]))
    rows = []
    for schedule in dict.fromkeys(table["schedule"]):
        part = table[table["schedule"] == schedule]
        for variant in dict.fromkeys(part["variant"]):
            cells = part[part["variant"] == variant].set_index("metric")
            lam = cells["lambda"].iloc[0]
            key = (variant, None) if variant == BASELINE else (variant, lam)
            row = {"schedule": schedule, "method": variant, "λ": _lam(lam), "seeds": int(cells["seeds"].max())}
            for m in metrics:
                if m not in cells.index:
                    row[m] = row[f"Δ{m}"] = ""
                    continue
                r = cells.loc[m]
                paper = PAPER_TABLE2.get(key, {}).get(m)
                row[m] = (f"{r['mean']:.4g}" if finite(r["mean"]) else "-") + (
                    f" (paper {paper[0]:.4g})" if paper else "")
                d, se, p = r["diff"], r["diff_se"], r["p"]
                row[f"Δ{m}"] = "" if variant == BASELINE or not finite(d) else (
                    f"{d:+.2g}" + (f" ± {se:.2g}" if finite(se) else " (1 pair)") + (f", p={p:.2g}" if finite(p)
                                                                                      else "")
                    + (" *" if detected(r, alpha) else ""))
            rows.append(row)
        floors = part.groupby("metric", sort=False)["floor"].first()
        rows.append({"schedule": schedule, "method": "noise floor", "λ": "", "seeds": "",
                     **{m: (f"{floors[m]:.2g}" if finite(floors.get(m)) else "-") for m in metrics},
                     **{f"Δ{m}": "" for m in metrics}})
    out = pd.DataFrame(rows)
    return out[["schedule", "method", "λ", "seeds", *[c for m in metrics for c in (m, f"Δ{m}")]]]


def _word(metric: str, diff: float, p: float, alpha: float) -> str:
    """better / worse by the glossary's direction (higher / lower for a metric with none)."""
    return direction(diff, p, AB_AUDIO.glossary.get(metric, ("", "neither"))[1], alpha)


def conclusion(table: Any, choice: Mapping[str, Any] | None = None, alpha: float = ALPHA) -> str:
    """The study's conclusion as plain sentences generated from ``table`` (:func:`.study.ab_table`): per variant
    and schedule, the metrics whose paired difference to the baseline exceeds their noise floor with p < alpha,
    in which direction (the glossary's better / worse), over how many seeds, or "no effect detectable at this
    scale"; how many tests would pass by chance; and, given the rule's record ``choice``, the kinds whose screen
    failed the fd_mel guard."""
    rows = table[table["variant"] != BASELINE] if len(table) else table
    if not len(rows):
        return "No finished evaluation runs yet: nothing to conclude."
    lines, n_effects, n_rows = [], 0, 0
    for (variant, schedule), part in rows.groupby(["variant", "schedule"], sort=False):
        records = part.to_dict("records")
        seeds = int(part["seeds"].max())
        head = f"{variant} (λ={_lam(records[0]['lambda'])}), {schedule} schedule, {seeds} seed{'s' * (seeds != 1)}: "
        found = [r for r in records if detected(r, alpha)]
        n_rows += 1
        n_effects += bool(found)
        if found:
            lines.append(head + "; ".join(
                f"{r['metric']} {_word(r['metric'], r['diff'], r['p'], alpha)} (Δ {r['diff']:+.2g} ± "
                f"{r['diff_se']:.2g}, p = {r['p']:.2g}, floor {r['floor']:.2g})" for r in found) + ".")
        else:
            why = " (one seed: a paired test needs at least two)" if seeds < 2 else ""
            lines.append(head + f"no effect detectable at this scale{why}.")
    tests = int(sum(finite(p) for p in rows["p"]))
    summary = [f"{n_effects} of {n_rows} variant-schedule rows differ from the baseline beyond the noise floor "
               f"with p < {alpha:g}."]
    if tests:
        summary.append(f"Of the {tests} paired tests, about {alpha * tests:.1f} would pass p < {alpha:g} by "
                       "chance alone.")
    if choice is not None:
        failed = [k for k, v in choice["chosen"].items() if v.get("guard_failed")]
        summary.append(
            f"Guard: the screen's fd_mel guard failed for {', '.join(failed)} (no lambda kept fd_mel within the "
            "baseline's plus its noise floor), so the smallest lambda was evaluated." if failed else
            "Guard: every kind had a screened lambda with fd_mel within the baseline's plus its noise floor.")
    return "\n".join(summary + lines)


def headline(table: Any) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """(headline, glossary) for metrics.json: ``<variant>_<schedule>_<metric>`` = the mean over seeds (finite
    ones), and ``effects_detected`` = the (variant, schedule, metric) rows that pass :func:`detected`."""
    head, gloss = {}, {}
    for r in table.to_dict("records") if len(table) else []:
        if finite(r["mean"]) and r["metric"] in AB_AUDIO.glossary:
            key = f"{r['variant']}_{r['schedule']}_{r['metric']}"
            head[key] = float(r["mean"])
            gloss[key] = describe(f"{r['variant']} ({r['schedule']} schedule)", r["metric"], AB_AUDIO.glossary,
                                  int(r["seeds"]))
    head["effects_detected"] = float(sum(detected(r) for r in table.to_dict("records"))) if len(table) else 0.0
    gloss["effects_detected"] = {"meaning": f"(variant, schedule, metric) paired differences to the baseline "
                                 f"beyond the noise floor with p < {ALPHA:g}", "better": "neither"}
    return head, gloss


def lambda_curves(record: Mapping[str, Any], metrics: tuple[str, ...] = ("mr_stft", "fd_mel")) -> plt.Figure:
    """The screen (seed 0, fast schedule) per kind: each metric against lambda (bins="sum"), the baseline
    (dashed), the guard's fd_mel limit (dotted: baseline + floor) and the rule's chosen lambda (red ring)."""
    kinds = list(record["chosen"])
    fig, axes = plt.subplots(len(metrics), len(kinds), figsize=(2.3 * len(kinds), 2.1 * len(metrics)),
                             squeeze=False, sharex="col")
    for j, kind in enumerate(kinds):
        pts = sorted((s["lambda"], s) for s in record["screen"] if s["variant"] == kind and s["bins"] == "sum")
        lams = [lam for lam, _ in pts]
        chosen = record["chosen"][kind]
        for i, m in enumerate(metrics):
            ax = axes[i][j]
            screen_panel(ax, lams, [s.get(m) for _, s in pts], record["baseline"].get(m), chosen["lambda"],
                         chosen["limit"] if m == "fd_mel" else None)
            if j == 0:
                ax.set_ylabel(f"{m} ({AB_AUDIO.glossary[m][1]} is better)", fontsize=7)
            if i == 0:
                ax.set_title(f"{kind}: λ={chosen['lambda']:g}" + (" (guard failed)" if chosen["guard_failed"]
                                                                   else ""), fontsize=8)
            if i == len(metrics) - 1:
                ax.set_xlabel('λ (bins="sum")', fontsize=7)
    axes[-1][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def _seed_diffs(part: Any) -> tuple[Any, list[str]]:
    """Per seed (rows) and variant (columns) the paired difference to the baseline of the same seed, over the seeds
    the baseline and every variant have; and the variants (baseline excluded)."""
    wide = part.pivot(index="seed", columns="variant", values="value").dropna()
    variants = [v for v in dict.fromkeys(part["variant"]) if v != BASELINE]
    return wide[variants].sub(wide[BASELINE], axis=0), variants


def seed_influence(seeds: Any, table: Any, metric: str = "mr_stft") -> str:
    """Sentences, one per schedule, on how the seeds make ``metric``'s paired differences (:func:`.study.seed_table`
    values, :func:`.study.ab_table` floors): the spread of the baseline's seeds against the noise floor, the
    difference averaged over every variant, the seed whose variants differ most from its baseline, and that average
    without this seed. A common shift of every variant that one seed carries reads as that seed's baseline, not as
    an effect of any term."""
    lines = []
    for schedule in dict.fromkeys(seeds["schedule"]) if len(seeds) else []:
        part = seeds[(seeds["schedule"] == schedule) & (seeds["metric"] == metric)]
        if BASELINE not in set(part["variant"]):
            continue
        diffs, variants = _seed_diffs(part)
        if len(diffs) < 3 or not variants:
            lines.append(f"{metric}, {schedule} schedule: {len(diffs)} paired seed(s); the seed influence needs 3.")
            continue
        base = part[part["variant"] == BASELINE]["value"]
        floor = table[(table["metric"] == metric) & (table["schedule"] == schedule)]["floor"].dropna()
        spread = float(base.max() - base.min())
        of_floor = (f", {spread / float(floor.iloc[0]):.1f}x the noise floor {float(floor.iloc[0]):.2g}"
                    if len(floor) and float(floor.iloc[0]) > 0 else "")
        per_seed = diffs.mean(axis=1)
        top = int(per_seed.abs().idxmax())
        lines.append(
            f"{metric}, {schedule} schedule: the baseline's {len(base)} seeds span {base.min():.4g} .. {base.max():.4g}"
            f" (range {spread:.2g}{of_floor}). Averaged over the {len(variants)} variants, the paired difference to "
            f"the baseline is {per_seed.mean():+.2g}; seed {top}'s variants differ most from its baseline "
            f"({per_seed[top]:+.2g}), and without seed {top} the average is {per_seed.drop(top).mean():+.2g}.")
    return "\n".join(lines)


def seed_lines(seeds: Any, metric: str = "mr_stft") -> plt.Figure:
    """``metric`` per variant (baseline first) for every evaluation seed, one line per seed and one panel per
    schedule: the pairs the table's differences are made of, and how far the seeds lie apart."""
    part = seeds[seeds["metric"] == metric]
    schedules = list(dict.fromkeys(part["schedule"]))
    fig, axes = plt.subplots(1, len(schedules), figsize=(5.2 * len(schedules), 3.2), squeeze=False, sharey=True)
    for ax, schedule in zip(axes[0], schedules, strict=True):
        sub = part[part["schedule"] == schedule]
        wide = sub.pivot(index="seed", columns="variant", values="value")
        variants = list(dict.fromkeys(sub["variant"]))
        for seed, row in wide[variants].iterrows():
            ax.plot(range(len(variants)), row.to_numpy(), "o-", ms=3, lw=1, label=f"seed {seed}")
        ax.set_xticks(range(len(variants)), variants, rotation=30, fontsize=7)
        ax.set_title(f"{schedule} schedule", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel(f"{metric} ({AB_AUDIO.glossary[metric][1]} is better)", fontsize=7)
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def example_runs(plan: AbAudioPlan, root: str | Path, schedule: str = "fast") -> list[RunResult]:
    """The finished evaluation runs of the first evaluation seed with ``schedule`` (baseline first, then the kinds
    and peers), only re-read: one held-out clip per variant for the spectrograms and players. A run installed from
    the archive has its metrics but not its audio (``core.runs``): it is left out."""
    configs = evaluate_configs(plan, Path(root), write=False) or []
    runs = [run(AB_AUDIO, c, root) for c in configs if c.train.seed == plan.eval_seeds[0]
            and c.sample.schedule == schedule and run_state(AB_AUDIO, c, root)[0] == "done"]
    return [r for r in runs if not r.archived]


def commands_left(status: Mapping[str, Any], runs_root: str = "checkpoints") -> list[str]:
    """The commands that finish the study from :func:`.status.ab_status` (``core.study.commands_left``)."""
    return study_commands_left("specreg ab-audio", status, runs_root, "ab")
