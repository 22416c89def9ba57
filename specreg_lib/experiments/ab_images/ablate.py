"""The ablation stage of the image study: what the paper leaves open, on the best and the worst kind
(docs/ab_images.md, "Ablation"; issue 21 item 4). It runs after the evaluation seeds of ``ABLATE_DATASET``.

Which kinds: among the paper's variants (amp, amp_phase, haar, bior1.3 x weighted / unweighted) at their chosen
strengths, the best and the worst by the mean paired difference to the baseline in log_distance over the
evaluation seeds (ties: the first in the plan's order). Option-specific rows go to the variant they apply to:
amp_phase at its better weighting (Eq. 15 coupling, phase_eps), the better of haar / bior1.3 (wavelet levels).

Each row is one change to its variant, on the evaluation seeds, paired with the reference of the same seeds:

* ``bins``: the other reduction over bins ("sum" <-> "mean") at the chosen strength, for a wavelet kind: a
  wavelet's "mean" averages each band before summing the bands, so it reweights the bands (coarse bands count as
  much as fine ones) and is a different objective; the lambda that makes the two equal in strength is recorded.
  For a Fourier kind sum = (number of bins) x mean for every input, so the reduction only rescales lambda (no
  run; tests/test_spectral_reduction.py);
* ``low-noise gate``: w = 1 for sigma <= sigma_data (0.5), else 0 (``t_gate``), at the chosen strength;
* ``five steps``: the paper text's 5 optimisation steps (no LR ramp, no EMA), against the baseline of 5 steps;
* ``4x longer``: 4 x the fine-tune's duration and EMA half-life, against the baseline of the same length;
* ``coupling global``, ``phase_eps 0.1`` (amp_phase) and ``levels 1``, ``levels 3`` (wavelet): at the chosen
  strength, so the row measures the term's shape, not its scale.

"At the chosen strength" re-calibrates lambda for the changed term (gradient-norm ratio at the pretrained net, as
the screen's calibration). The FFT norm has no row: for every Fourier kind and coupling L_S under "ortho" is
exactly 1/sqrt(H W) times L_S under "backward" (a rescaling of lambda; tests/test_ab_images.py checks it), so a
norm is a lambda convention, not a different objective.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...diffusion import Regularizer, SpectralWeighting
from ...io import write_json
from ..core.compare import compare
from ..core.config import apply_overrides, resolve_variant
from ..core.runs import RunResult
from ..core.study import read_record
from .experiment import AB_IMAGES, METRICS
from .plan import BASELINE, KINDS, AbImagesPlan, Point, finetune_config, study_dir
from .study import StageNotReady, _key, choice, difference_floor, grad_ratios, noise_floors, run_all, run_metrics

ABLATE_DATASET = "dead_leaves"  # the stand-in without a source mismatch (docs/ab_images.md: floor 0.007)
GATE_SIGMA = 0.5  # sigma_data: the gate keeps the low-noise half of EDM's training distribution
LONGER = 4


@dataclass(frozen=True)
class Row:
    """One ablation row: a name, the variant it changes, the overrides of its fine-tunes, whether lambda is
    re-calibrated to the variant's chosen strength, and the reference row ("baseline" or a length's baseline)."""

    name: str
    variant: str  # "kind/weighting"
    options: tuple[tuple[str, Any], ...] = ()  # L_S options changed
    weighting: Any = None  # a SpectralWeighting replacing the variant's, or None
    overrides: tuple[tuple[str, Any], ...] = ()  # config overrides (length)
    same_strength: bool = True
    reference: str = BASELINE


def _paper_variants(plan: AbImagesPlan) -> list[str]:
    return [f"{k}/{w}" for k in plan.kinds if k in KINDS for w in plan.weightings]


def ranking(plan: AbImagesPlan, root: Path) -> list[tuple[str, float]] | None:
    """The paper's variants by mean paired log_distance difference to the baseline (best first), or None while an
    evaluation run of ``ABLATE_DATASET`` is missing."""
    from .study import ab_table, evaluate_configs

    if ABLATE_DATASET not in plan.datasets:
        return None
    configs = evaluate_configs(plan, root, ABLATE_DATASET, write=False)
    if configs is None or any(run_metrics(plan, root, c) is None for c in configs):
        return None
    t = ab_table(plan, root, ABLATE_DATASET)
    t = t[t["metric"] == "log_distance"].set_index("variant")["diff"]
    order = _paper_variants(plan)
    return sorted(((v, float(t[v])) for v in order), key=lambda r: (r[1], order.index(r[0])))


def rows(plan: AbImagesPlan, root: Path) -> list[Row] | None:
    """The ablation rows (module docstring), or None before the evaluation seeds of ABLATE_DATASET are done."""
    ranked = ranking(plan, root)
    if ranked is None:
        return None
    by = dict(ranked)
    best, worst = ranked[0][0], ranked[-1][0]
    out: list[Row] = []
    train = AB_IMAGES.config(plan.profile, dict(plan.finetune))
    longer = (("finetune.duration_kimg", train.finetune.duration_kimg * LONGER),
              ("train.ema_halflife_kimg", train.train.ema_halflife_kimg * LONGER))
    for v in dict.fromkeys((best, worst)):
        kind = v.split("/")[0]
        bins = _options(kind).get("bins", "mean")
        if kind in ("haar", "bior1.3"):  # a Fourier kind's other reduction is the same objective (docstring)
            out.append(Row(f"{v}: bins {'mean' if bins == 'sum' else 'sum'}", v,
                           (("bins", "mean" if bins == "sum" else "sum"),)))
        out += [Row(f"{v}: low-noise gate (sigma <= {GATE_SIGMA:g})", v,
                    weighting=SpectralWeighting("t_gate", sigma_gate=GATE_SIGMA)),
                Row(f"{v}: five steps", v, overrides=(("finetune.length", "five_steps"),), same_strength=False,
                    reference="baseline: five steps"),
                Row(f"{v}: {LONGER}x longer", v, overrides=longer, same_strength=False,
                    reference=f"baseline: {LONGER}x longer")]
    ap = [x for x in _paper_variants(plan) if x.startswith("amp_phase/")]
    if ap:
        v = min(ap, key=lambda x: by[x])
        out += [Row(f"{v}: coupling global", v, (("coupling", "global"),)),
                Row(f"{v}: phase_eps 0.1", v, (("phase_eps", 0.1),))]
    wav = [x for x in _paper_variants(plan) if x.split("/")[0] in ("haar", "bior1.3")]
    if wav:
        v = min(wav, key=lambda x: by[x])
        out += [Row(f"{v}: levels {n}", v, (("levels", n),)) for n in (1, 3)]
    return out


def _options(kind: str) -> dict[str, Any]:
    var = resolve_variant(kind, AB_IMAGES.variants)
    return dict(var.options) if var is not None else {}


def _regularizer(plan: AbImagesPlan, row: Row, lam: float) -> Regularizer:
    kind, weighting = row.variant.split("/")
    var = resolve_variant(kind, AB_IMAGES.variants)
    w = row.weighting if row.weighting is not None else weighting
    return Regularizer(var.kind, lam, w, {**dict(var.options), **dict(row.options)})


def row_lambdas(plan: AbImagesPlan, root: Path, write: bool = True) -> dict[str, Any] | None:
    """Each row's lambda (ablation-<dataset>.json): the chosen lambda, or the one that gives the changed term the
    variant's chosen strength; with the rows' gradient-norm ratios. None before the rows are known."""
    path = study_dir(plan, root) / f"ablation-{ABLATE_DATASET}.json"
    record = read_record(path)
    key = _key(plan, root, ABLATE_DATASET)
    if record and record.get("key") == key:
        return record
    the_rows = rows(plan, root)
    if the_rows is None:
        return None
    chosen = choice(plan, root, ABLATE_DATASET, write=False)["chosen"]
    regs = {r.name: _regularizer(plan, r, 1.0) for r in the_rows if r.same_strength}
    ratios = grad_ratios(plan, root, ABLATE_DATASET, regs) if regs else {}
    lambdas = {r.name: float(f"{chosen[r.variant]['strength'] / ratios[r.name]:.2g}") if r.same_strength else
               chosen[r.variant]["lambda"] for r in the_rows}
    record = {"key": key, "ranking": ranking(plan, root), "rows": [dataclasses.asdict(r) | {
        "weighting": None if r.weighting is None else dataclasses.asdict(r.weighting)} for r in the_rows],
        "grad_ratio": ratios, "lambdas": lambdas}
    if write:
        write_json(path, record)
    return record


def _row_config(plan: AbImagesPlan, root: Path, row: Row, lam: float, seed: int) -> Any:
    base = finetune_config(plan, root, Point(ABLATE_DATASET, BASELINE, None, None, None, seed))
    return apply_overrides(base, {"regularizer": _regularizer(plan, row, lam), **dict(row.overrides)})


def _reference_config(plan: AbImagesPlan, root: Path, name: str, seed: int, the_rows: list[Row]) -> Any:
    base = finetune_config(plan, root, Point(ABLATE_DATASET, BASELINE, None, None, None, seed))
    if name == BASELINE:
        return base
    over = next(r.overrides for r in the_rows if r.reference == name)
    return apply_overrides(base, dict(over))


def ablation_configs(plan: AbImagesPlan, root: Path, write: bool = True) -> dict[tuple[str, int], Any] | None:
    """(row or reference name, seed) -> config of every ablation run (the references of other lengths included;
    the plain baseline is the evaluation stage's), or None before the rows are known."""
    record = row_lambdas(plan, root, write)
    if record is None:
        return None
    the_rows = rows(plan, root)
    out = {}
    for seed in plan.eval_seeds:
        for ref in dict.fromkeys(r.reference for r in the_rows):
            out[(ref, seed)] = _reference_config(plan, root, ref, seed, the_rows)
        for r in the_rows:
            out[(r.name, seed)] = _row_config(plan, root, r, record["lambdas"][r.name], seed)
    return out


def run_ablate(plan: AbImagesPlan, root: Path, say: Callable[[str], None] = print) -> list[RunResult]:
    if ABLATE_DATASET not in plan.datasets:
        say(f"ablate: runs on {ABLATE_DATASET}, which this plan leaves out; nothing to do")
        return []
    configs = ablation_configs(plan, root)
    if configs is None:
        raise StageNotReady(f"the ablation runs on the best and worst kinds of {ABLATE_DATASET}'s evaluation; run "
                            "--stage evaluate first (or --stage all)")
    return run_all(plan, root, list(configs.values()), say)


def ablation_table(plan: AbImagesPlan, root: str | Path, alpha: float = 0.05) -> Any:
    """One row per (ablation row, against, metric): mean over seeds, the paired difference to the same variant's
    evaluation runs (``against`` "variant": its chosen setting) or to its reference (``against`` "reference": the
    baseline of the same length), with SE and p, the floor; ``compared_with`` names the runs compared with."""
    import pandas as pd

    root = Path(root)
    configs = ablation_configs(plan, root, write=False)
    if configs is None:
        return pd.DataFrame()
    record = row_lambdas(plan, root, write=False)
    the_rows = {r.name: r for r in rows(plan, root)}
    chosen = choice(plan, root, ABLATE_DATASET, write=False)["chosen"]
    values: dict[tuple, dict[int, dict[str, float]]] = {}
    for (name, seed), cfg in configs.items():
        m = run_metrics(plan, root, cfg)
        if m is not None:
            values.setdefault((name,), {})[seed] = m
    for v in {r.variant for r in the_rows.values()}:  # the variants at their chosen setting (evaluation runs)
        c = chosen[v]
        for seed in plan.eval_seeds:
            cfg = finetune_config(plan, root, Point(ABLATE_DATASET, *v.split("/"), c["strength"], c["lambda"], seed))
            m = run_metrics(plan, root, cfg)
            if m is not None:
                values.setdefault((v,), {})[seed] = m
    floors = noise_floors(plan, root, ABLATE_DATASET, write=False)["held_out"]
    out = []
    for against in ("variant", "reference"):
        ref = (lambda key: (the_rows[key[0]].variant,)) if against == "variant" else \
            (lambda key: (the_rows[key[0]].reference,))
        sub = {k: vals for k, vals in values.items() if k[0] in the_rows}
        refs = {k: vals for k, vals in values.items() if k[0] not in the_rows}
        long = compare({**sub, **refs}, list(METRICS), AB_IMAGES.glossary, reference=lambda key, ref=ref: ref(key)
                       if key[0] in the_rows else None, alpha=alpha)
        for r in long.to_dict("records"):
            (name,) = r["row"]
            if name not in the_rows:
                continue
            floor = difference_floor(r["metric"], floors.get(r["metric"]))
            row = the_rows[name]
            out.append({"row": name, "against": against, "compared_with": row.variant if against == "variant" else
                        row.reference, "lambda": record["lambdas"][name], "metric": r["metric"],
                        "seeds": r["n"], "mean": r["mean"], "diff": r["diff"], "diff_se": r["diff_se"], "p": r["p"],
                        "direction": r["direction"], "floor": floor, "exceeds_floor": None if floor is None or
                        not np.isfinite(r["diff"]) else bool(abs(r["diff"]) > floor)})
    return pd.DataFrame(out)
