"""The toy front (issue 21, item 5): spectral log distance against the share of valid checkerboards across lambda,
for each of the paper's kinds and each image peer, with 3 evaluation seeds at the point a pre-registered rule picks.

Why a front: one ratio at one lambda (0.70 for amp_phase, ``figures/cpu/02_checkerboard_toy``) cannot say whether a
kind trades structure for spectrum or gets both; a line per kind across lambda can. Built on the ``checkerboard``
experiment with overrides only (its own profiles and run hashes are untouched): a cheaper setting (32x32
checkerboards, a 64-channel net, fewer steps; docs/ab_images.md "Toy front" gives the measured cost).

* ``screen`` (seed 0): the baseline, and every kind and peer at the lambdas that give its gradient the strengths
  ``plan.strengths`` relative to the diffusion gradient at the seed-0 initial net (:func:`calibrate`): a lambda
  means nothing across kinds, a gradient ratio does.
* the rule (:data:`RULE`, quoted in the docs) picks one lambda per kind from the complete screen; ``choice.json``
  records it before any evaluation seed trains.
* ``evaluate``: the baseline and every kind and peer at its chosen lambda on seeds 1, 2, 3 (latents depend on the
  seed only, so variants of one seed are paired); :func:`front_table` gives paired differences to the baseline.

Every run goes through ``core.runs.run`` (``<root>/checkerboard/<label>_<hash>/``: resumable, cached); the study's
own files live in ``<root>/toy_front/<profile>/``. Run it with ``python -m specreg_lib.experiments.toy.front``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...diffusion.balance import term_balance
from ...errors import InputError
from ...io import read_json, resolve_repo_path, write_json
from ...spectral import IMAGE_PEERS
from ..core.compare import compare, describe, detected, direction, finite
from ..core.config import config_hash
from ..core.runs import RunResult, results_dir, run_state
from ..core.study import (
    add_study_arguments,
    archive_study,
    choose_setting,
    count_stage,
    diverged,
    estimate,
    format_stages,
    median,
    read_study_record,
    run_all,
    run_stages,
    total_line,
)
from .experiment import CHECKERBOARD, TOY_GLOSSARY, ToyConfig

BASELINE = "baseline"
KINDS = ("amp", "amp_phase", "haar", "bior1.3")  # Eqs. 14-16 (TOY_VARIANTS)
PEERS = IMAGE_PEERS  # registered kinds (spectral/image_peers.py)
STAGES = ("screen", "evaluate")
METRICS = ("log_distance", "valid_fraction", "binariness")
# a run the training loop stopped as non-finite (a term too strong for the net): fails every guard, never chosen
DIVERGED = {"log_distance": math.inf, "valid_fraction": -math.inf, "binariness": -math.inf}

RULE = ("For each kind and peer (amp, amp_phase, haar, bior1.3, pixel_l1, dct_multiscale, focal_freq, facl), among "
        "its lambdas screened on seed 0, the candidates are those whose valid_fraction is at least the baseline's "
        "valid_fraction minus the valid_fraction noise floor (the binomial floor of the baseline's rate). The chosen "
        "lambda is the candidate with the lowest log_distance; log_distance values equal to 4 significant digits "
        "are a tie, won by the smaller lambda. When no lambda is a candidate, the smallest lambda is chosen and the "
        "kind is marked \"guard failed\".")


class FrontError(InputError, ValueError):
    """A front plan value outside its choices, or a stage asked for before the one it needs."""


@dataclass(frozen=True)
class FrontPlan:
    """The front: the checkerboard profile it builds on, its overrides, the kinds, strengths and seeds."""

    profile: str = "smoke"
    base_profile: str = "smoke"  # the checkerboard experiment's profile every config starts from
    overrides: tuple[tuple[str, Any], ...] = ()  # dotted overrides of every run
    kinds: tuple[str, ...] = KINDS
    peers: tuple[str, ...] = PEERS
    strengths: tuple[float, ...] = (0.1, 1.0)  # ||grad w L_S|| / ||grad L_diff|| at lambda; rho -> lambda
    screen_seed: int = 0
    eval_seeds: tuple[int, ...] = (1, 2, 3)  # the registered evaluation seeds: the front's result
    # seeds added after the registered result was written, trained by the evaluate stage after the registered ones and
    # reported beside it, never instead of it (front_table(extension=True); docs/ab_images.md, Toy front)
    extension_seeds: tuple[int, ...] = ()
    calibration_batches: int = 8  # training batches the gradient ratio is averaged over

    def __post_init__(self) -> None:
        if not self.strengths or any(not (0 < s < math.inf) for s in self.strengths) or \
                len(set(self.strengths)) != len(self.strengths):
            raise FrontError(f"strengths {self.strengths}: need distinct finite values > 0")
        if not self.eval_seeds or self.screen_seed in self.eval_seeds:
            raise FrontError(f"eval_seeds {self.eval_seeds} must be non-empty and exclude the screening seed "
                             f"{self.screen_seed}: a lambda is never scored on the seed that chose it")
        if {self.screen_seed, *self.eval_seeds} & set(self.extension_seeds) or \
                len(set(self.extension_seeds)) != len(self.extension_seeds):
            raise FrontError(f"extension_seeds {self.extension_seeds} must be distinct and apart from the screening "
                             f"seed {self.screen_seed} and the eval_seeds {self.eval_seeds}")
        if self.calibration_batches < 1:
            raise FrontError(f"calibration_batches must be >= 1, got {self.calibration_batches}")

    @property
    def variants(self) -> tuple[str, ...]:
        return (*self.kinds, *self.peers)


# cpu: 32x32 checkerboards (periods 4 and 8), a 64-channel net (1.2 M parameters) trained 6,000 steps at batch 16
# with a 200-step EMA (decay 0.995), 128 samples (valid_fraction in steps of 1/128). Fewer steps learn no
# checkerboard at all (seed-0 baseline probes: 0 of 128 valid at 1,500 and 3,000 steps, 61 of 128 at 6,000).
_CPU = {"data.size": 32, "model.base_channels": 64, "train.steps": 6000, "train.warmup_steps": 100,
        "train.ema_decay": 0.995, "train.checkpoint_every": 500, "train.progress": False, "sample.n_samples": 128,
        "threads": 1}
# smoke: the checkerboard smoke net (16 channels, T=20) at 32 px, 10 steps: the pipeline, not the effect
_SMOKE = {"data.size": 32, "train.steps": 10, "threads": 1}
PLANS = {
    "smoke": FrontPlan("smoke", "smoke", tuple(_SMOKE.items()), eval_seeds=(1, 2), calibration_batches=1),
    # seeds 4-5: added 2026-12-04, after the registered 3-seed result (every test there had 2 degrees of freedom)
    "cpu": FrontPlan("cpu", "cpu", tuple(_CPU.items()), strengths=(0.01, 0.05, 0.2, 1.0), extension_seeds=(4, 5)),
    # above rho 1, a follow-up registered 2026-12-04 (docs/ab_images.md, "Above ρ 1"): the rule chose cpu's top
    # strength for amp and amp_phase. Same net, overrides and seed-0 calibration as cpu, so its rho-1 runs and the
    # baseline's are cpu's own run folders (same configs), reused, and only rho 3 and 10 train anew.
    "cpu_strong": FrontPlan("cpu_strong", "cpu", tuple(_CPU.items()), kinds=("amp", "amp_phase"), peers=(),
                            strengths=(1.0, 3.0, 10.0), eval_seeds=(1, 2, 3, 4, 5)),
}
PROFILES = {"cpu_strong": "amp and amp_phase screened above rho 1 (1, 3, 10), docs/ab_images.md, Above ρ 1"}


def follow_up(plan: FrontPlan) -> FrontPlan | None:
    """The plan screening above ``plan``'s top strength (``PLANS["<profile>_strong"]``), or None."""
    return PLANS.get(f"{plan.profile}_strong")


def front_plan(profile: str, **changes: Any) -> FrontPlan:
    """The named plan (``smoke`` | ``cpu``) with ``changes`` to its fields (e.g. ``peers=()``)."""
    if profile not in PLANS:
        raise FrontError(f"unknown profile {profile!r} (--profile): choose one of {', '.join(PLANS)}")
    return dataclasses.replace(PLANS[profile], **changes)


STUDY = "toy_front"  # its folder under the runs root, and under data/pretrained for the committed records


def study_dir(plan: FrontPlan, root: str | Path) -> Path:
    """``<root>/toy_front/<profile>/``: calibration.json, choice.json and timings/ of the plan."""
    return Path(root) / STUDY / plan.profile


def plan_hash(plan: FrontPlan) -> str:
    """The key of the front's records (calibration, choice): every plan field but the evaluation seeds, which no
    record depends on, so adding evaluation seeds keeps the choice committed before they ran."""
    return config_hash({k: v for k, v in dataclasses.asdict(plan).items()
                        if k not in ("eval_seeds", "extension_seeds")})


def evaluation_seeds(plan: FrontPlan, extension: bool = True) -> tuple[int, ...]:
    """The registered evaluation seeds, then (``extension``) the seeds added after their result."""
    return (*plan.eval_seeds, *(plan.extension_seeds if extension else ()))


def run_config(plan: FrontPlan, variant: str, lambda_spec: float | None, seed: int) -> ToyConfig:
    """One run: the baseline (``lambda_spec`` None) or a kind/peer at ``lambda_spec``, the toy's alpha_bar weighting."""
    over: dict[str, Any] = {**dict(plan.overrides), "train.seed": seed}
    if variant == BASELINE:
        over["regularizer"] = None
    else:
        over |= {"regularizer": variant, "regularizer.lambda_spec": lambda_spec, "regularizer.weighting": "alpha_bar"}
    return CHECKERBOARD.config(plan.base_profile, over)


# -- calibration: strengths -> lambdas --------------------------------------------------------------------------


def calibrate(plan: FrontPlan, root: str | Path, write: bool = True) -> dict[str, Any]:
    """Per kind, r = mean ||grad w L_S|| / ||grad L_diff|| (lambda 1) at the seed-0 initial net (the one every
    seed-0 run starts from) over the same batches, noise and steps t; lambda = rho / r to 2 significant digits.
    Cached in calibration.json (``write=False``: read it, or compute in memory)."""
    path = study_dir(plan, root) / "calibration.json"
    record = read_study_record(path, STUDY, plan.profile)
    if record and record.get("plan") == plan_hash(plan):
        return record
    ratios = {}
    for kind in plan.variants:
        cfg = run_config(plan, kind, 1.0, plan.screen_seed)
        with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left as it was
            torch.manual_seed(plan.screen_seed)  # as core.runs._train seeds the initial weights
            net = CHECKERBOARD.build_model(cfg)
        loss, data = CHECKERBOARD.build_loss(cfg), CHECKERBOARD.build_data(cfg)
        r = []
        for b in range(plan.calibration_batches):
            g = torch.Generator().manual_seed(b)
            r.append(term_balance(loss, net, data(cfg.train.batch_size, g), generator=g)["grad_ratio"])
        ratios[kind] = sum(r) / len(r)
    lambdas = {k: [float(f"{rho / ratios[k]:.2g}") for rho in plan.strengths] for k in plan.variants}
    record = {"plan": plan_hash(plan), "strengths": list(plan.strengths), "grad_ratio": ratios, "lambdas": lambdas}
    if write:
        write_json(path, record)
    return record


# -- the rule ----------------------------------------------------------------------------------------------------


def valid_floor(valid_fraction: float, n: int) -> float:
    """Noise floor of a difference of two valid fractions at ``n`` samples each, both at the baseline's rate:
    sqrt(2 p (1 - p) / n), p = (k + 1) / (n + 2) with k = round(valid_fraction n) valid samples (Laplace's rule,
    so a baseline at 0 or 100% still has a floor). Held-out data are all valid (floor 0), so the floor is binomial."""
    k = round(valid_fraction * n)
    p = (k + 1) / (n + 2)
    return math.sqrt(2 * p * (1 - p) / n)


def choose(screen: Mapping[float, Mapping[str, float]], baseline: Mapping[str, float], floor: float
           ) -> dict[str, Any]:
    """:data:`RULE` for one kind: ``screen`` lambda -> its seed-0 metrics. valid_fraction is "higher is better",
    so the guard is the invalid share 1 - valid_fraction ("at most the baseline's plus the floor")."""
    def inv(m: Mapping[str, float]) -> dict[str, float]:
        return {"invalid": 1.0 - m["valid_fraction"], "log_distance": m["log_distance"]}

    return choose_setting({lam: inv(m) for lam, m in screen.items()}, inv(baseline), floor, guard="invalid",
                          target="log_distance")


# -- stages ------------------------------------------------------------------------------------------------------


def _metrics(plan: FrontPlan, cfg: ToyConfig, root: Path) -> dict[str, Any] | None:
    """A finished run's metrics.json, :data:`DIVERGED` for a run that diverged, or None (reads only)."""
    if diverged(CHECKERBOARD, cfg, root, study_dir(plan, root)):
        return dict(DIVERGED)
    if run_state(CHECKERBOARD, cfg, root)[0] != "done":
        return None
    return read_json(results_dir(CHECKERBOARD, cfg, root) / "metrics.json")


def screen_configs(plan: FrontPlan, lambdas: Mapping[str, list[float]]) -> list[tuple[str, float | None, ToyConfig]]:
    """(variant, lambda, config) of every seed-0 run: the baseline, then each kind at each of its lambdas."""
    out = [(BASELINE, None, run_config(plan, BASELINE, None, plan.screen_seed))]
    return out + [(k, lam, run_config(plan, k, lam, plan.screen_seed)) for k in plan.variants for lam in lambdas[k]]


def screen_metrics(plan: FrontPlan, root: Path, lambdas: Mapping[str, list[float]] | None = None
                   ) -> dict[tuple[str, float | None], Any]:
    """(variant, lambda) -> metrics of the finished screening runs (missing ones left out); reads only."""
    lambdas = lambdas or calibrate(plan, root, write=False)["lambdas"]
    out = {}
    for v, lam, cfg in screen_configs(plan, lambdas):
        m = _metrics(plan, cfg, root)
        if m is not None:
            out[(v, lam)] = m
    return out


def choice(plan: FrontPlan, root: Path, write: bool = True, lambdas: Mapping[str, list[float]] | None = None
           ) -> dict[str, Any] | None:
    """The rule's choice per kind (choice.json, written once from the complete screen), or None while the screen is
    incomplete; ``write=False`` reads choice.json or computes the same choice in memory (``lambdas``: the
    calibration's, when the caller has them)."""
    path = study_dir(plan, root) / "choice.json"
    record = read_study_record(path, STUDY, plan.profile)  # a fresh clone: the committed choice
    if record and record.get("plan") == plan_hash(plan):
        return record
    lambdas = lambdas or calibrate(plan, root, write)["lambdas"]
    metrics = screen_metrics(plan, root, lambdas)
    if len(metrics) < len(screen_configs(plan, lambdas)):
        return None
    base = metrics[(BASELINE, None)]
    floor = valid_floor(base["valid_fraction"], run_config(plan, BASELINE, None, plan.screen_seed).sample.n_samples)
    chosen = {k: choose({lam: metrics[(k, lam)] for lam in lambdas[k]}, base, floor) for k in plan.variants}
    for k, c in chosen.items():
        c["strength"] = plan.strengths[lambdas[k].index(c["lambda"])]
    record = {"plan": plan_hash(plan), "rule": RULE, "valid_floor": floor, "chosen": chosen,
              "baseline": {m: base[m] for m in METRICS},
              "screen": [{"variant": v, "lambda": lam, **{m: x[m] for m in METRICS}}
                         for (v, lam), x in metrics.items()]}
    if write:
        write_json(path, record)
    return record


def eval_configs(plan: FrontPlan, record: Mapping[str, Any], extension: bool = True) -> list[tuple[str, ToyConfig]]:
    """(variant, config) of the evaluation runs at the chosen lambdas (``extension``: the extension seeds' too);
    seeds outermost, registered first, so a partial stage already holds complete pairs."""
    return [(v, run_config(plan, v, None if v == BASELINE else record["chosen"][v]["lambda"], s))
            for s in evaluation_seeds(plan, extension) for v in (BASELINE, *plan.variants)]


def _timing(cfg: ToyConfig, res: RunResult) -> dict[str, Any]:
    return {"sampler": cfg.sample.sampler, "n_samples": cfg.sample.n_samples}


def run_front(plan: FrontPlan, root: str | Path, stage: str = "all", say: Callable[[str], None] = print
              ) -> list[RunResult]:
    """Run ``stage`` ("screen" | "evaluate") or both in order ("all"); every run resumes or is only re-read."""
    root, study = Path(root), study_dir(plan, Path(root))
    if stage not in (*STAGES, "all"):
        raise FrontError(f"unknown stage {stage!r}: choose one of {', '.join(STAGES)}, all")

    def screen() -> list[RunResult | None]:
        configs = [c for _, _, c in screen_configs(plan, calibrate(plan, root)["lambdas"])]
        return run_all(CHECKERBOARD, root, configs, study, say, _timing, allow_divergence=True)

    def evaluate() -> list[RunResult | None]:
        record = choice(plan, root)
        if record is None:
            raise FrontError("the evaluation seeds run at the lambdas the rule chooses from the complete screen; "
                             "run --stage screen first (or --stage all)")
        configs = [c for _, c in eval_configs(plan, record)]
        return run_all(CHECKERBOARD, root, configs, study, say, _timing, allow_divergence=True)

    return run_stages({"screen": screen, "evaluate": evaluate}, stage)


def archive_front(plan: FrontPlan, root: str | Path, say: Callable[[str], None] = print) -> dict[str, int]:
    """Copy the finished runs' metrics and the calibration and choice into the checkout, to be committed
    (``core.study.archive_study``): a fresh clone then resumes the front and rebuilds its table and figure."""
    root = Path(root)
    lambdas = calibrate(plan, root, write=False)["lambdas"]
    record = choice(plan, root, write=False, lambdas=lambdas)
    configs = [c for _, _, c in screen_configs(plan, lambdas)] + ([c for _, c in eval_configs(plan, record)]
                                                                  if record else [])
    return archive_study(CHECKERBOARD, root, configs, [study_dir(plan, root) / n for n in ("calibration.json",
                         "choice.json")], STUDY, plan.profile, say=say)


# -- status ------------------------------------------------------------------------------------------------------


def front_status(plan: FrontPlan, root: str | Path) -> dict[str, Any]:
    """Per stage: runs and evaluations done / left, steps left, measured s/step and an estimate. Writes nothing."""
    root = Path(root)
    steps = run_config(plan, BASELINE, None, plan.screen_seed).train.steps
    lambdas = calibrate(plan, root, write=False)["lambdas"]
    record = choice(plan, root, write=False, lambdas=lambdas)
    n_eval = len(evaluation_seeds(plan)) * (1 + len(plan.variants))
    evals = [c for _, c in eval_configs(plan, record)] if record else []
    pending = 0 if record else n_eval

    def count(configs: list[ToyConfig], runs: int) -> dict[str, Any]:
        return count_stage(CHECKERBOARD, root, configs, runs, runs * steps, {"ancestral": runs} if runs else {},
                           lambda cfg: cfg.sample.sampler)

    screen = count([c for _, _, c in screen_configs(plan, lambdas)], 0)
    if record is not None and screen["runs_left"]:  # chosen elsewhere (the committed record): the screen is done
        n = len(record["screen"])
        screen |= {"runs": n, "runs_left": 0, "evaluations": n, "evaluations_done": n, "steps_left": 0,
                   "evals_left": {}}
    stages = {"screen": screen, "evaluate": count(evals, pending)}
    timing = [read_json(p) for p in sorted((study_dir(plan, root) / "timings").glob("*.json"))]
    per_eval = {"ancestral": median([t["eval_seconds"] for t in timing])}
    rate = median(stages["screen"]["rates"] + stages["evaluate"]["rates"])
    total = estimate(stages, per_eval, lambda name, st: rate)
    stages["screen"]["pending"] = ""
    stages["evaluate"]["pending"] = f"{pending} runs (lambdas chosen by the rule after the screen)" if pending else ""
    return {"profile": plan.profile, "stages": stages, "lambdas": lambdas, "eta_seconds": total,
            "chosen": None if record is None else {k: v["lambda"] for k, v in record["chosen"].items()}}


def format_front_status(status: Mapping[str, Any]) -> str:
    lines = format_stages(f"toy front, profile {status['profile']}", status["stages"], STAGES)
    if status["chosen"]:
        lines.append("chosen lambdas: " + ", ".join(f"{k} {v:g}" for k, v in status["chosen"].items()))
    lines.append(total_line(status["stages"], "this front's"))
    return "\n".join(lines)


# -- table and figure (read only) ---------------------------------------------------------------------------------


def _eval_values(plan: FrontPlan, root: Path, extension: bool = False
                 ) -> tuple[dict[str, dict[int, dict[str, float]]], Any]:
    """variant -> seed -> metrics of the finished evaluation runs (the registered seeds; ``extension``: all), and the
    choice record (or None)."""
    record = choice(plan, root, write=False)
    values: dict[str, dict[int, dict[str, float]]] = {}
    for v, cfg in eval_configs(plan, record, extension) if record else []:
        m = _metrics(plan, cfg, root)
        if m is not None:  # a diverged run enters as +-inf: its mean and difference say so
            values.setdefault(v, {})[cfg.train.seed] = {k: float(m[k]) for k in METRICS}
    return values, record


FLOOR_SEED = 30_011  # the data draw that measures log_distance's floor: apart from the reference and every run seed


def front_floors(plan: FrontPlan, baseline_valid: float | None) -> dict[str, float]:
    """The yardstick of a paired difference per metric, as in the image study: ``log_distance`` of a fresh draw of
    ``n_samples`` true checkerboards against the ground-truth reference (what "as good as the data" measures as);
    ``valid_fraction``: :func:`valid_floor` at the baseline's rate ``baseline_valid`` (held-out data are all valid,
    so the floor is binomial); ``binariness`` has none (every true checkerboard is binary, and the per-sample spread
    that would set a floor is not kept), so it is described, never called an effect."""
    cfg = run_config(plan, BASELINE, None, plan.screen_seed)
    n = cfg.sample.n_samples
    data = cfg.data.build()(n, torch.Generator().manual_seed(FLOOR_SEED))
    floors = {"log_distance": float(CHECKERBOARD.evaluate(cfg, data)[0]["log_distance"])}
    if baseline_valid is not None and math.isfinite(baseline_valid):
        floors["valid_fraction"] = valid_floor(baseline_valid, n)
    return floors


def front_table(plan: FrontPlan, root: str | Path, alpha: float = 0.05, extension: bool = False) -> Any:
    """One row per (variant, metric) of the registered evaluation seeds (``extension``: with the extension seeds,
    the registered ones included): the chosen lambda and strength, the mean over seeds
    with its SE, the paired difference to the baseline of the same seed with its SE and p (``core.compare``), the
    metric's floor (:func:`front_floors`, at the baseline's mean valid fraction) and whether the difference is an
    effect (``core.compare.detected``: p < alpha and beyond the floor)."""
    import pandas as pd

    values, record = _eval_values(plan, Path(root), extension)
    long = compare(values, METRICS, TOY_GLOSSARY, reference=BASELINE, alpha=alpha)
    base = long[(long["row"] == BASELINE) & (long["metric"] == "valid_fraction")]
    floors = front_floors(plan, float(base["mean"].iloc[0]) if len(base) else None) if len(long) else {}
    rows = []
    for r in long.to_dict("records"):
        c = None if r["row"] == BASELINE else record["chosen"][r["row"]]
        row = {"variant": r["row"], "lambda": None if c is None else c["lambda"],
               "strength": None if c is None else c["strength"],
               "guard_failed": None if c is None else c["guard_failed"], "metric": r["metric"], "seeds": r["n"],
               "mean": r["mean"], "se": r["se"], "diff": r["diff"], "diff_se": r["diff_se"], "p": r["p"],
               "direction": r["direction"], "note": r["note"], "floor": floors.get(r["metric"])}
        row["effect"] = c is not None and detected(row, alpha)
        rows.append(row)
    return pd.DataFrame(rows)


def front_sentences(table: Any, alpha: float = 0.05) -> str:
    """The front's conclusion, generated from :func:`front_table`: one sentence per kind and peer at its chosen
    lambda (its effects on log_distance and valid_fraction with Δ ± SE, p and the floor, or "no effect"; a failed
    guard named), then which variants buy a lower log distance without losing valid checkerboards."""
    if not len(table):
        return "No evaluation run of the toy front has finished yet."
    lines, both = [], []
    for variant, part in table.groupby("variant", sort=False):
        if variant == BASELINE:
            continue
        by = {r["metric"]: r for r in part.to_dict("records")}
        r0 = next(iter(by.values()))
        said = []
        for m in ("log_distance", "valid_fraction"):
            r = by.get(m)
            if r is None or not math.isfinite(r["diff"]):
                said.append(f"{m} n/a (a diverged or missing run)")
            elif r["effect"]:
                said.append(f"{m} {direction(r['diff'], r['p'], TOY_GLOSSARY[m][1], alpha)} (Δ {r['diff']:+.2g} ± "
                            f"{r['diff_se']:.2g}, p = {r['p']:.2g}, floor {r['floor']:.2g})")
            else:
                said.append(f"{m} no effect (Δ {r['diff']:+.2g}, p = {r['p']:.2g}, floor {r['floor']:.2g})")
        guard = "; its guard failed (no screened lambda kept the baseline's validity)" if r0["guard_failed"] else ""
        n = int(r0["seeds"])
        lines.append(f"{variant} (ρ={r0['strength']:g}, λ={r0['lambda']:g}), {n} seed{'s' * (n != 1)}: "
                     + "; ".join(said) + guard + ".")
        ld, vf = by.get("log_distance"), by.get("valid_fraction")
        if ld is not None and vf is not None and ld["effect"] and ld["diff"] < 0 and not (
                vf["effect"] and vf["diff"] < 0):
            both.append(variant)
    lines.append("Lower log distance without losing valid checkerboards: " + (", ".join(both) if both else "none")
                 + ".")
    return "\n".join(lines)


def extension_sentences(registered: Any, extended: Any) -> str:
    """The extension rule (docs/ab_images.md, Toy front): per variant and metric that is an effect over the
    registered seeds, whether it holds over all seeds (an effect there with the same sign), and the effects that
    appear only over all seeds; from two :func:`front_table` tables (the registered and ``extension=True``)."""
    if not len(extended) or int(extended["seeds"].max()) <= int(registered["seeds"].max() if len(registered) else 0):
        return "No extension seed has finished yet: the registered table is all there is."
    rows = {(r["variant"], r["metric"]): r for r in extended.to_dict("records") if r["variant"] != BASELINE}
    lines = []
    for r in registered.to_dict("records"):
        if r["variant"] == BASELINE or not r["effect"]:
            continue
        e = rows.get((r["variant"], r["metric"]))
        if e is None:
            lines.append(f"{r['variant']} {r['metric']}: no row over all seeds (a run missing or diverged).")
            continue
        holds = e["effect"] and math.copysign(1, e["diff"]) == math.copysign(1, r["diff"])
        lines.append(f"{r['variant']} {r['metric']}: {'holds' if holds else 'does not hold'} over {int(e['seeds'])} "
                     f"seeds (Δ {e['diff']:+.2g} ± {e['diff_se']:.2g}, p = {e['p']:.2g}; registered Δ "
                     f"{r['diff']:+.2g}, p = {r['p']:.2g}).")
    was = {(r["variant"], r["metric"]) for r in registered.to_dict("records") if r["effect"]}
    for key, e in rows.items():
        if e["effect"] and key not in was:
            lines.append(f"{key[0]} {key[1]}: an effect only over {int(e['seeds'])} seeds (Δ {e['diff']:+.2g} ± "
                         f"{e['diff_se']:.2g}, p = {e['p']:.2g}), not in the registered result.")
    return "\n".join(lines) if lines else "The registered table has no effect to re-read, and all seeds add none."


def above_sentences(record: Mapping[str, Any], table: Any, reference: Any) -> str:
    """The "Above ρ 1" rule (docs/ab_images.md): per kind of a plan that screens strengths above the front's top
    (``record``: its choice record), whether the rule moved past the weakest strength, and why not where it did not
    (each stronger lambda's seed-0 valid_fraction against the guard, or its log distance against the chosen one's);
    where it moved, per metric with a floor whether the stronger point buys more: an effect in the better direction
    whose difference beats the same kind's row of ``reference`` (the front's table over the same seeds) by more than
    sqrt(SE^2 + SE^2) of the two rows; an effect in the worse direction is its cost. ``table``: the plan's
    :func:`front_table`."""
    screen = {(p["variant"], p["lambda"]): p for p in record["screen"]}
    rows = {(r["variant"], r["metric"]): r for r in table.to_dict("records")}
    ref = {(r["variant"], r["metric"]): r for r in reference.to_dict("records")}
    lines = []
    for k, c in record["chosen"].items():
        stronger = sorted(lam for v, lam in screen if v == k and lam > c["lambda"])
        if c["guard_failed"]:
            seen = "; ".join(f"λ {lam:g}: {screen[(k, lam)]['valid_fraction']:.3g}"
                             for lam in sorted(lam for v, lam in screen if v == k))
            lines.append(f"{k}: no strength passes the guard on seed 0 (valid_fraction at least "
                         f"{1 - c['limit']:.3g}; {seen}), ρ {c['strength']:g} included: nothing stronger is taken.")
            continue
        if c["lambda"] == min(lam for v, lam in screen if v == k):  # stays at the weakest (the front's top)
            why = []
            for lam in stronger:
                p = screen[(k, lam)]
                if lam in c["candidates"]:
                    why.append(f"λ {lam:g}: log distance {p['log_distance']:.4g}, not below "
                               f"{screen[(k, c['lambda'])]['log_distance']:.4g}")
                else:
                    why.append(f"λ {lam:g}: valid_fraction {p['valid_fraction']:.3g}, below the guard's "
                               f"{1 - c['limit']:.3g}")
            lines.append(f"{k}: the rule stays at ρ {c['strength']:g} (λ {c['lambda']:g}; {'; '.join(why)}): no, "
                         f"a stronger term is not taken on seed 0.")
            continue
        said, seeds = [], "its"
        for m in METRICS[:2]:  # the metrics with a floor; binariness is described, never an effect
            new, old = rows.get((k, m)), ref.get((k, m))
            if new is None or old is None:
                said.append(f"{m}: no row (a run missing or diverged)")
                continue
            seeds = str(int(new["seeds"]))
            sign = -1.0 if TOY_GLOSSARY[m][1] == "lower" else 1.0
            gain, margin = sign * (new["diff"] - old["diff"]), math.hypot(new["diff_se"], old["diff_se"])
            if new["effect"] and sign * new["diff"] > 0 and gain > margin:
                verdict = f"yes, beyond ρ {old['strength']:g}'s by {gain:.2g} (> {margin:.2g})"
            elif new["effect"] and sign * new["diff"] < 0:
                verdict = "a cost"
            else:
                verdict = f"no gain over ρ {old['strength']:g} (by {gain:+.2g}, margin {margin:.2g})" \
                    if new["effect"] else "not an effect"
            said.append(f"{m} Δ {new['diff']:+.2g} ± {new['diff_se']:.2g} (p {new['p']:.2g}) against ρ "
                        f"{old['strength']:g}'s {old['diff']:+.2g} ± {old['diff_se']:.2g}: {verdict}")
        lines.append(f"{k}: the rule moves to ρ {c['strength']:g} (λ {c['lambda']:g}); over "
                     f"{seeds} seeds, {'; '.join(said)}.")
    return "\n".join(lines)


def above_report(plan: FrontPlan, root: str | Path, extended: Any) -> dict[str, Any]:
    """Notebook 12's "Above ρ 1" section for ``plan`` (its front): the follow-up plan ``PLANS[<profile>_strong]``
    read where it stands. Returns {"text": the rule's sentences or what is left to run, "status": the follow-up's
    status (None without one), "reproduction" (:func:`screen_reproduction` against the front's committed choice),
    "screen", "table" (DataFrames, None until their stage is complete) and "metrics": the keys metrics.json gets}.
    ``extended``: the front's :func:`front_table` over every seed (the reference rows)."""
    import pandas as pd

    strong = follow_up(plan)
    out: dict[str, Any] = {"status": None, "reproduction": None, "screen": None, "table": None, "metrics": {}}
    if strong is None:
        return out | {"text": "This profile has no follow-up above the front's top strength."}
    root = Path(root)
    out["status"] = front_status(strong, root)
    record = choice(strong, root, write=False)
    if record is None:
        return out | {"text": f"The follow-up's screen is not complete: specreg toy-front --profile {strong.profile}."}
    out["reproduction"] = screen_reproduction(record, choice(plan, root, write=False) or {"screen": []})
    out["screen"] = pd.DataFrame(record["screen"])
    out["metrics"] = {"above_screen": record["screen"], "above_chosen": record["chosen"],
                      "above_reproduction": json.loads(out["reproduction"].to_json(orient="records"))}
    evaluation = out["status"]["stages"]["evaluate"]
    if evaluation["evaluations_done"] < evaluation["evaluations"]:
        return out | {"text": f"The follow-up's evaluation is not complete ({evaluation['evaluations_done']} of "
                              f"{evaluation['evaluations']}): specreg toy-front --profile {strong.profile}."}
    out["table"] = front_table(strong, root)
    out["metrics"]["above_table"] = json.loads(out["table"].to_json(orient="records"))
    return out | {"text": above_sentences(record, out["table"], extended)}


def screen_reproduction(record: Mapping[str, Any], committed: Mapping[str, Any]) -> Any:
    """The seed-0 points two choice records share (same variant and lambda: the same run config), one row per point
    and metric with both values and their difference: whether a screening run trained again reproduces the
    committed one."""
    import pandas as pd

    theirs = {(p["variant"], p["lambda"]): p for p in committed["screen"]}
    rows = []
    for p in record["screen"]:
        q = theirs.get((p["variant"], p["lambda"]))
        if q is None:
            continue
        for m in METRICS:
            here = math.inf if p[m] is None else float(p[m])
            there = math.inf if q[m] is None else float(q[m])
            rows.append({"variant": p["variant"], "lambda": p["lambda"], "metric": m, "here": here,
                         "committed": there, "difference": here - there})
    return pd.DataFrame(rows, columns=["variant", "lambda", "metric", "here", "committed", "difference"])


def calibration_table(plan: FrontPlan, root: str | Path) -> Any:
    """One row per kind and peer: r, the strength of lambda 1 (||grad w L_S|| / ||grad L_diff|| at the seed-0 initial
    net), and the lambda of each screened strength rho (calibration.json, or the committed copy; computed in memory
    when neither exists), with the lambda the rule chose once it has."""
    import pandas as pd

    root = Path(root)
    cal = calibrate(plan, root, write=False)
    record = choice(plan, root, write=False, lambdas=cal["lambdas"])
    rows = []
    for k in plan.variants:
        at = {f"λ at ρ={rho:g}": lam for rho, lam in zip(plan.strengths, cal["lambdas"][k], strict=True)}
        rows.append({"variant": k, "strength of λ=1": cal["grad_ratio"][k], **at,
                     "chosen λ": None if record is None else record["chosen"][k]["lambda"]})
    return pd.DataFrame(rows)


def front_headline(table: Any, alpha: float = 0.05) -> tuple[dict[str, float], dict[str, dict[str, str]]]:
    """(headline, glossary) for metrics.json: ``<variant>_<metric>`` = the mean over the evaluation seeds (finite
    ones) and ``effects_detected`` = the (variant, metric) rows that are an effect (p < alpha and beyond the floor)."""
    head, gloss = {}, {}
    for r in table.to_dict("records") if len(table) else []:
        if finite(r["mean"]):
            key = f"{r['variant']}_{r['metric']}"
            head[key] = float(r["mean"])
            gloss[key] = describe(r["variant"], r["metric"], TOY_GLOSSARY, int(r["seeds"]))
    head["effects_detected"] = float(sum(bool(r["effect"]) for r in table.to_dict("records")) if len(table) else 0)
    gloss["effects_detected"] = {"meaning": "(variant, metric) paired differences to the baseline beyond the noise "
                                 f"floor with p < {alpha:g}", "better": "neither"}
    return head, gloss


def front_figure(plan: FrontPlan, root: str | Path) -> Any:
    """log_distance (x) against valid_fraction (y): one line per kind/peer across its seed-0 lambdas (each point
    labelled with its lambda), the seed-0 baseline as a star, and the registered evaluation seeds' means +- SE at
    the chosen points (squares; the baseline's in black); once every extension seed has finished, the means over all
    evaluation seeds beside them (hollow squares, never in their place); once the follow-up above the top strength
    (``PLANS[<profile>_strong]``) has screened, its stronger seed-0 points as dotted lines from each kind's top."""
    import matplotlib.pyplot as plt

    root = Path(root)
    screen, table = screen_points(plan, root), front_table(plan, root)
    every = evaluation_seeds(plan)
    extended = front_table(plan, root, extension=True) if plan.extension_seeds else table.iloc[:0]
    if len(extended) and (extended["seeds"] < len(every)).any():
        extended = extended.iloc[:0]  # a partial extension is the notebook's table to show, not a point to draw
    fig, ax = plt.subplots(figsize=(8, 6))
    colours = plt.get_cmap("tab10")
    for i, v in enumerate(plan.variants):
        pts = sorted((lam, m) for (k, lam), m in screen.items() if k == v and math.isfinite(m["log_distance"]))
        if not pts:
            continue
        x, y = [m["log_distance"] for _, m in pts], [m["valid_fraction"] for _, m in pts]
        ax.plot(x, y, "o" + ("-" if v in plan.kinds else "--"), color=colours(i), label=v, ms=4, lw=1)
        _label_lambdas(ax, [p[0] for p in pts], x, y, colours(i))
    strong = follow_up(plan)
    above = choice(strong, root, write=False) if strong is not None else None  # None until its screen is complete
    for i, v in enumerate(plan.variants if above else ()):
        top = max((lam for k, lam in screen if k == v), default=None)
        pts = sorted((p["lambda"], p) for p in above["screen"] if p["variant"] == v and p["lambda"] > top and
                     p["log_distance"] is not None and math.isfinite(p["log_distance"]))
        if not pts:
            continue
        x = [screen[(v, top)]["log_distance"], *(p["log_distance"] for _, p in pts)]
        y = [screen[(v, top)]["valid_fraction"], *(p["valid_fraction"] for _, p in pts)]
        ax.plot(x, y, "o:", color=colours(i), ms=4, lw=1, mfc="none", label=f"{v}: above the top strength")
        _label_lambdas(ax, [lam for lam, _ in pts], x[1:], y[1:], colours(i))
    if (BASELINE, None) in screen:
        b = screen[(BASELINE, None)]
        ax.plot(b["log_distance"], b["valid_fraction"], "k*", ms=12, label="baseline (seed 0)")
    for rows, seeds, hollow in ((table, plan.eval_seeds, False), (extended, every, True)):
        by = {(r["variant"], r["metric"]): r for r in rows.to_dict("records")}
        for i, v in enumerate((BASELINE, *plan.variants)):
            if (v, "log_distance") not in by:
                continue
            x, y = by[(v, "log_distance")], by[(v, "valid_fraction")]
            if not (math.isfinite(x["mean"]) and math.isfinite(y["mean"])):
                continue  # a diverged seed: the table says so
            colour = "k" if v == BASELINE else colours(i - 1)
            label = f"seeds {','.join(map(str, seeds))} mean ± SE" + (" (extension)" if hollow else "")
            ax.errorbar(x["mean"], y["mean"], xerr=_bar(x["se"]), yerr=_bar(y["se"]), fmt="s", ms=7, capsize=3,
                        color=colour, mec=colour if hollow else "k", mfc="none" if hollow else colour,
                        alpha=0.8 if hollow else 1.0, label=label if v == BASELINE else None)
    ax.set_xlabel("spectral log distance to the ground truth (decades, lower is better)")
    ax.set_ylabel("valid checkerboard fraction (higher is better)")
    note = "" if plan.profile != "smoke" else "\nsmoke: a tiny net trained 10 steps shows the pipeline, not the effect"
    ext = ("; hollow: over every seed" if len(extended) else "") + ("; dotted: the follow-up" if above else "")
    ax.set_title(f"toy front ({plan.profile}): lines = seed-0 screen across lambda (labelled); squares = chosen "
                 f"points{ext}{note}", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def screen_points(plan: FrontPlan, root: Path) -> dict[tuple[str, float | None], dict[str, float]]:
    """(variant, lambda) -> seed-0 metrics of the screen: from the choice record once the rule has chosen (it holds
    every screened point, also on a clone whose screening runs were trained elsewhere), else from the finished
    screening runs here. A diverged point (null in the record) is +inf."""
    record = choice(plan, root, write=False)
    if record is None:
        return screen_metrics(plan, root)
    inf = float("inf")
    return {(p["variant"], p["lambda"]): {m: inf if p[m] is None else float(p[m]) for m in METRICS}
            for p in record["screen"]}


def _label_lambdas(ax: Any, lambdas: list[float], x: list[float], y: list[float], colour: Any) -> None:
    for lam, xi, yi in zip(lambdas, x, y, strict=True):
        ax.annotate(f"{lam:g}", (xi, yi), fontsize=6, color=colour, xytext=(3, 2), textcoords="offset points")


def _bar(se: float) -> float | None:
    return se if math.isfinite(se) else None


# -- the door ----------------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The front's options: those of every study door (``core.study.add_study_arguments``)."""
    add_study_arguments(p, "docs/ab_images.md, Toy front", STAGES, profiles=PROFILES)


def execute(args: argparse.Namespace) -> int:
    """Print the status; then (unless --status / --dry-run) run the stage(s) and print the table."""
    plan, root = front_plan(args.profile), resolve_repo_path(args.root)
    run_config(plan, BASELINE, None, plan.screen_seed)  # every config value is checked before any work
    status = front_status(plan, root)
    print(json.dumps(status, indent=1) if args.json else format_front_status(status), flush=True)
    if args.status:
        return 0
    if args.archive:
        archive_front(plan, root, say=lambda line: print(line, flush=True))
        return 0
    if args.dry_run:
        for _, _, cfg in screen_configs(plan, status["lambdas"]):
            print(f"screen: {CHECKERBOARD.label(cfg)} ({cfg.train.steps} steps)")
        record = choice(plan, root, write=False, lambdas=status["lambdas"])
        for _, cfg in eval_configs(plan, record) if record else []:
            print(f"evaluate: {CHECKERBOARD.label(cfg)} ({cfg.train.steps} steps)")
        if record is None:
            print("evaluate: the runs are known once the screen is complete (the rule chooses their lambdas)")
        return 0
    run_front(plan, root, args.stage, say=lambda line: print(line, flush=True))
    if args.stage in ("evaluate", "all"):
        print(front_table(plan, root).to_string(index=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m specreg_lib.experiments.toy.front``: an :class:`InputError` is one line on stderr and exit 2."""
    parser = argparse.ArgumentParser(prog="python -m specreg_lib.experiments.toy.front", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        return execute(parser.parse_args(argv))
    except InputError as err:
        print(f"toy front: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
