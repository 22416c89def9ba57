"""The image A/B study's stages (pretrain -> screen -> evaluate) per stand-in, and its table; every stage skips
what is done.

Each run goes through :func:`..core.runs.run` (run folders under ``<root>/ab_images_edm/``, locks, resume, cached
results), so killing the study and starting it again resumes every run from its last checkpoint; several workers
(one per core) may run the same stage (``core.study.run_all``). The study's own files live in
``<root>/ab_images/<profile>/`` (:func:`.plan.study_dir`):

    init-<dataset>-<arch>.pkl               the from-scratch initial net (fixed seed), EDM's pickle layout
    pretrained-<dataset>-<hash>-step<N>.pkl the pretrained EMA net, which every fine-tune loads
    calibration-<dataset>.json              gradient-norm ratios at the pretrained net and the lambdas they give
    floors-<dataset>.json                   each metric for held-out data (and for training data) vs the reference
    choice-<dataset>.json                   the rule's choice (written once, from the screening seed only)
    timings/<run>-<results>.json            measured evaluation seconds, for the status estimate
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...diffusion import Regularizer
from ...diffusion.edm_train import term_table
from ...io import write_json
from ...models.edm_checkpoint import save_edm_checkpoint
from ...models.tiny_edm import write_tiny_checkpoint
from ...training.checkpoint import load_checkpoint
from ..core.compare import compare
from ..core.config import resolve_variant
from ..core.runs import RunResult, run, run_state, snapshot_path
from ..core.study import committed_copy, diverged, install_committed, read_record
from ..core.study import run_all as study_run_all
from .experiment import (
    AB_IMAGES,
    FLOOR_SEED,
    METRICS,
    STANDINS,
    TRAIN_DRAW_SEED,
    TRAIN_LOG_DISTANCE,
    _train_images,
    ensure_dataset,
    log_distance_of,
    mean_spectrum,
    reference_images,
    score,
    train_reference_spectrum,
)
from .plan import (
    BASELINE,
    AbImagesPlan,
    PlanError,
    Point,
    eval_points,
    finetune_config,
    init_path,
    plan_hash,
    pretrain_config,
    pretrained_path,
    regularized,
    screen_points,
    study_dir,
)
from .rule import RULE, choose


class StageNotReady(PlanError):
    """A stage was asked for before the stage it builds on is complete."""


def run_all(plan: AbImagesPlan, root: Path, configs: list[Any], say: Callable[[str], None]) -> list[RunResult]:
    """:func:`..core.study.run_all` on the image experiment, timings (per stand-in) in the study's folder."""
    return study_run_all(AB_IMAGES, root, configs, study_dir(plan, root), say,
                         lambda cfg, res: {"dataset": cfg.data.dataset, "n_samples": res.metrics["n_samples"]},
                         allow_divergence=True)


DIVERGED = {m: math.inf for m in (*METRICS, TRAIN_LOG_DISTANCE)}  # a diverged run: fails every guard, never chosen


def run_metrics(plan: AbImagesPlan, root: Path, cfg: Any, train: bool = False) -> dict[str, Any] | None:
    """A finished run's metrics (only re-read), :data:`DIVERGED` for a run that diverged, None while not done;
    ``train``: with TRAIN_LOG_DISTANCE from the same read, the log distance of the samples' stored spectrum to fresh
    TRAINING-source images (:func:`.experiment.train_reference_spectrum`): a secondary metric, added after the photos
    screen (no rule uses it), that separates "closer to the data" from "more high frequencies than the training set"
    where the held-out sources differ from the training ones (photos)."""
    if diverged(AB_IMAGES, cfg, root, study_dir(plan, root)):
        return DIVERGED
    if run_state(AB_IMAGES, cfg, root)[0] != "done":
        return None
    result = run(AB_IMAGES, cfg, root)
    if not train or TRAIN_LOG_DISTANCE in result.metrics:
        return result.metrics
    reference = train_reference_spectrum(cfg.data.dataset, plan.resolution, cfg.evaluate.n_reference)
    return {**result.metrics, TRAIN_LOG_DISTANCE: log_distance_of(result.arrays["power"], reference)}


# -- stage 1: pretrain ----------------------------------------------------------------------------------------


def write_init(plan: AbImagesPlan, root: Path, dataset: str) -> Path:
    """The initial net of ``dataset`` (a DDPM++ SongUNet from a fixed seed, no attention), written once."""
    path = init_path(plan, root, dataset)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tiny_checkpoint(path, "vp", plan.resolution, plan.model_channels, img_channels=STANDINS[
            dataset].channels, channel_mult=plan.channel_mult, attn_resolutions=())
    return path


def run_pretrain(plan: AbImagesPlan, root: Path, say: Callable[[str], None] = print) -> list[Path]:
    """Build the stand-ins and initial nets, train (or resume) each pretraining run, evaluate it once, and write
    its EMA net as an EDM pickle with the initial file's records (EDM's loss settings, augment pipe)."""
    todo = [d for d in plan.datasets if not install_committed(pretrained_path(plan, root, d), "ab_images",
                                                              plan.profile)]  # the repository's copy, if any
    for d in todo:
        ensure_dataset(d, plan.resolution, plan.train_images)
        write_init(plan, root, d)
    configs = [pretrain_config(plan, root, d) for d in todo]
    run_all(plan, root, configs, say)
    out = [pretrained_path(plan, root, d) for d in plan.datasets if d not in todo]
    for d, cfg in zip(todo, configs, strict=True):
        path = pretrained_path(plan, root, d)
        if not path.is_file():
            net = AB_IMAGES.build_model(cfg)
            net.load_state_dict(load_checkpoint(snapshot_path(AB_IMAGES, cfg, root))["model"])  # the EMA copy
            records = AB_IMAGES._load(cfg)[1]
            save_edm_checkpoint(net.eval(), path, **records)
            say(f"pretrained checkpoint: {path}")
        out.append(path)
    return out


def pretrain_done(plan: AbImagesPlan, root: Path, dataset: str) -> bool:
    path = pretrained_path(plan, root, dataset)
    return path.is_file() or committed_copy(path, "ab_images", plan.profile).is_file()


# -- stage 2: screen ------------------------------------------------------------------------------------------


def _round2(x: float) -> float:
    return float(f"{x:.2g}")


def _key(plan: AbImagesPlan, root: Path, dataset: str) -> dict[str, str]:
    return {"plan": plan_hash(plan), "checkpoint": pretrained_path(plan, root, dataset).name}


def grad_ratios(plan: AbImagesPlan, root: Path, dataset: str, regs: dict[str, Regularizer]) -> dict[str, float]:
    """r = mean ||grad w L_S|| / mean ||grad L_EDM|| (lambda_spec 1) of each of ``regs`` at the pretrained net of
    ``dataset`` (dropout off), over the same ``calibration_batches`` training batches (same images, augmentations,
    sigmas and noise per regularizer; ``diffusion.edm_train.term_table``), under the runs' pixel reduction."""
    cfg = finetune_config(plan, root, Point(dataset, BASELINE, None, None, None, plan.screen_seed))
    net = AB_IMAGES.build_model(cfg).eval()
    data, g = AB_IMAGES.build_data(cfg), torch.Generator().manual_seed(plan.screen_seed)
    grads: dict[str, list[tuple[float, float]]] = {k: [] for k in regs}
    for b in range(plan.calibration_batches):
        y, cond = data(cfg.train.batch_size, g)
        for r in term_table(net, y, regs, cond, net.edm_meta.get("loss_fn"), net.label_dim, seed=b):
            if r["pixels"] == cfg.loss.pixels:
                grads[r["regularizer"]].append((r["grad_spectral"], r["grad_diffusion"]))
    return {k: float(np.mean([s for s, _ in v]) / np.mean([d for _, d in v])) for k, v in grads.items()}


def calibrate(plan: AbImagesPlan, root: Path, dataset: str) -> dict[str, Any]:
    """Gradient norms of EDM's loss and of w * L_S (lambda_spec 1) at the pretrained net, for every regularized
    variant, over the same ``calibration_batches`` training batches (same images, augmentations, sigmas and noise
    per variant; ``diffusion.edm_train.term_table``), under the runs' pixel reduction. The ratio r = mean
    ||grad w L_S|| / mean ||grad L_EDM|| gives lambda_spec = rho / r for each strength rho (2 significant digits)."""
    path = study_dir(plan, root) / f"calibration-{dataset}.json"
    record = read_record(path)
    key = _key(plan, root, dataset)
    if record and record.get("key") == key:
        return record
    regs = {f"{v}/{w}": resolve_variant(v, AB_IMAGES.variants).regularizer(Regularizer("amp", 1.0, w))
            for v, w in regularized(plan)}
    ratios = grad_ratios(plan, root, dataset, regs)
    lambdas = {k: {str(rho): _round2(rho / r) for rho in plan.strengths} for k, r in ratios.items()}
    pixels = finetune_config(plan, root, Point(dataset, BASELINE, None, None, None, plan.screen_seed)).loss.pixels
    record = {"key": key, "pixels": pixels, "grad_ratio": ratios, "lambdas": lambdas}
    write_json(path, record)
    return record


def lambdas_of(plan: AbImagesPlan, root: Path, dataset: str) -> dict[str, dict[str, float]] | None:
    """The regularized variants' lambdas per strength once calibrated (None before)."""
    record = read_record(study_dir(plan, root) / f"calibration-{dataset}.json")
    if not record or record.get("key") != _key(plan, root, dataset):
        return None
    return record["lambdas"]


def noise_floors(plan: AbImagesPlan, root: Path, dataset: str, write: bool = True) -> dict[str, dict[str, float]]:
    """Each metric for held-out data against the reference at the runs' sample count ("held_out": what "no
    difference from the data" measures as; the yardstick of a difference), and for fresh training-source data
    ("train_data": the best a model of the training set can score against held-out data). Cached in
    floors-<dataset>.json; ``write=False`` computes without writing (status, table)."""
    path = study_dir(plan, root) / f"floors-{dataset}.json"
    cfg = finetune_config(plan, root, Point(dataset, BASELINE, None, None, None, plan.screen_seed))
    n, ev = cfg.sample.n_samples, cfg.evaluate
    key = {"dataset": dataset, "results": AB_IMAGES.results_hash(cfg), "data": AB_IMAGES.located(cfg).data.path,
           "resolution": plan.resolution}
    record = read_record(path)
    if record and record.get("key") == key:
        return record["floors"]
    ref = reference_images(dataset, plan.resolution, ev.n_reference)
    train = _train_images(str(ensure_dataset(dataset, plan.resolution, plan.train_images)))
    spec = STANDINS[dataset]
    floors = {"held_out": score(spec.draw(n, plan.resolution, FLOOR_SEED, held_out=True), ref, train, ev),
              "train_data": score(spec.draw(n, plan.resolution, TRAIN_DRAW_SEED, held_out=False), ref, train, ev)}
    if write:
        write_json(path, {"key": key, "floors": floors})
    return floors


def run_screen(plan: AbImagesPlan, root: Path, say: Callable[[str], None] = print) -> list[RunResult]:
    out = []
    for d in plan.datasets:
        if not install_committed(pretrained_path(plan, root, d), "ab_images", plan.profile):
            raise StageNotReady(f"the screen fine-tunes of {d} start from its pretrained checkpoint, which is not "
                                "written yet; run --stage pretrain first (or --stage all)")
        calibrate(plan, root, d)
        out += run_all(plan, root, [finetune_config(plan, root, p) for p in screen_points(
            plan, d, lambdas_of(plan, root, d))], say)
    return out


def screen_metrics(plan: AbImagesPlan, root: Path, dataset: str) -> dict[tuple, dict[str, float]] | None:
    """(dataset, variant, weighting, strength) -> metrics of every screening run, or None while any is not done."""
    lambdas = lambdas_of(plan, root, dataset)
    if lambdas is None or not pretrain_done(plan, root, dataset):
        return None
    out = {}
    for p in screen_points(plan, dataset, lambdas):
        m = run_metrics(plan, root, finetune_config(plan, root, p))
        if m is None:
            return None
        out[p.row] = m
    return out


def choice(plan: AbImagesPlan, root: Path, dataset: str, write: bool = True) -> dict[str, Any] | None:
    """The rule's choice per regularized variant of ``dataset`` (choice-<dataset>.json, written once from the
    complete screen), or None while its screen is not complete; ``write=False`` writes nothing."""
    path = study_dir(plan, root) / f"choice-{dataset}.json"
    key = _key(plan, root, dataset)
    record = read_record(path)
    if record and record.get("key") == key:
        return record
    metrics = screen_metrics(plan, root, dataset)
    if metrics is None:
        return None
    floor = noise_floors(plan, root, dataset, write)["held_out"]["feature_distance"]
    base = metrics[(dataset, BASELINE, None, None)]
    lambdas = lambdas_of(plan, root, dataset) or {}
    chosen = {}
    for v, w in regularized(plan):
        screen = {rho: m for (_, var, wt, rho), m in metrics.items() if var == v and wt == w}
        c = choose(screen, base, floor)
        chosen[f"{v}/{w}"] = {**c, "strength": c["lambda"], "lambda": lambdas[f"{v}/{w}"][str(c["lambda"])]}
    record = {"key": key, "rule": RULE, "feature_floor": floor, "baseline": {m: base.get(m) for m in METRICS},
              "chosen": chosen, "screen": [{"variant": v, "weighting": w, "strength": rho, **{
                  k: m.get(k) for k in METRICS}} for (_, v, w, rho), m in metrics.items()]}
    if write:
        write_json(path, record)
    return record


# -- stage 3: evaluate ----------------------------------------------------------------------------------------


def evaluate_configs(plan: AbImagesPlan, root: Path, dataset: str, write: bool = True) -> list[Any] | None:
    """The evaluation runs of ``dataset`` at the rule's choice, or None while its screen is not complete."""
    record = choice(plan, root, dataset, write)
    if record is None:
        return None
    return [finetune_config(plan, root, p) for p in eval_points(plan, dataset, record["chosen"])]


def run_evaluate(plan: AbImagesPlan, root: Path, say: Callable[[str], None] = print) -> list[RunResult]:
    out = []
    for d in plan.datasets:
        configs = evaluate_configs(plan, root, d)
        if configs is None:
            raise StageNotReady(f"the evaluation seeds of {d} run at the strengths the rule chooses from its "
                                "complete screen; run --stage screen first (or --stage all)")
        out += run_all(plan, root, configs, say)
    return out


# -- the table ------------------------------------------------------------------------------------------------


def train_floor(plan: AbImagesPlan, root: Path, dataset: str) -> float:
    """TRAIN_LOG_DISTANCE's noise floor and its ``train_data`` value: the run-sized training-source draw of
    :func:`noise_floors` (TRAIN_DRAW_SEED) against the training-source reference."""
    cfg = finetune_config(plan, root, Point(dataset, BASELINE, None, None, None, plan.screen_seed))
    draw = STANDINS[dataset].draw(cfg.sample.n_samples, plan.resolution, TRAIN_DRAW_SEED, held_out=False)
    return log_distance_of(mean_spectrum(draw)[1], train_reference_spectrum(dataset, plan.resolution,
                                                                        cfg.evaluate.n_reference))


def difference_floor(metric: str, held_out: float | None) -> float | None:
    """The yardstick of a paired difference in ``metric``: held-out data's own value for a distance or error (what
    "as good as the data" measures as), and its distance from 1 for a ratio (1 = same as the data)."""
    if held_out is None:
        return None
    return abs(held_out - 1.0) if metric.endswith("_ratio") else held_out


def variant_name(cfg: Any) -> str:
    """"baseline" or "<variant>/<weighting>" of a run's config."""
    reg = cfg.regularizer
    return BASELINE if reg is None else f"{reg.name}/{reg.weighting.kind}"


def ab_table(plan: AbImagesPlan, root: str | Path, dataset: str, alpha: float = 0.05) -> Any:
    """One row per (variant, metric) over the finished evaluation runs of ``dataset``: the chosen strength and
    lambda, the mean over seeds, the paired difference to the baseline of the same seed with its SE and paired
    t-test p (``core.compare``), the held-out noise floor and whether |difference| exceeds it."""
    import pandas as pd

    root = Path(root)
    record = choice(plan, root, dataset, write=False)
    configs = evaluate_configs(plan, root, dataset, write=False) or []
    values: dict[tuple, dict[int, dict[str, float]]] = {}
    for cfg in configs:
        m = run_metrics(plan, root, cfg, train=True)
        if m is not None:  # a diverged evaluation run enters as inf: its mean and difference say so
            values.setdefault((variant_name(cfg),), {})[cfg.train.seed] = m
    floors = ({**noise_floors(plan, root, dataset, write=False)["held_out"],
               TRAIN_LOG_DISTANCE: train_floor(plan, root, dataset)} if values else {})
    metrics = [m for m in (*METRICS, TRAIN_LOG_DISTANCE)
               if any(m in r for by_seed in values.values() for r in by_seed.values())]
    numeric = {k: {s: {m: float(v[m]) for m in metrics if m in v} for s, v in by_seed.items()}
               for k, by_seed in values.items()}
    long = compare(numeric, metrics, AB_IMAGES.glossary, reference=lambda key: (BASELINE,), alpha=alpha)
    rows = []
    for r in long.to_dict("records"):
        (variant,) = r["row"]
        c = None if variant == BASELINE else record["chosen"][variant]
        floor = difference_floor(r["metric"], floors.get(r["metric"]))
        diff = r["diff"]
        chosen = {"strength": None, "lambda": None, "guard_failed": None, "candidates": None, "screened": None} \
            if c is None else {"strength": c["strength"], "lambda": c["lambda"], "guard_failed": c["guard_failed"],
                               "candidates": len(c["candidates"]), "screened": len(plan.strengths)}
        rows.append({"dataset": dataset, "variant": variant, **chosen, "metric": r["metric"], "seeds": r["n"],
                     "mean": r["mean"], "diff": diff, "diff_se": r["diff_se"], "p": r["p"],
                     "direction": r["direction"], "floor": floor,
                     "exceeds_floor": None if floor is None or not np.isfinite(diff) else bool(abs(diff) > floor),
                     "note": r["note"]})
    return pd.DataFrame(rows)
