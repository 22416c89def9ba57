"""The audio A/B study's stages (pretrain -> screen -> evaluate) and its table; every stage skips what is done.

Each run goes through :func:`..core.runs.run` (run folders under ``<root>/diffwave/``, locks, resume, cached
results), so killing the study and starting it again resumes every run from its last checkpoint. Several workers
(one per core) may run the same stage: a run another worker holds is put off and awaited at the end. The study's
own files live in ``<root>/ab_audio/<profile>/`` (:func:`.plan.study_dir`):

    pretrained-<hash>-step<N>.pt   the pretrained EMA net in LMNT's checkpoint layout
    calibration.json               the term sizes at the pretrained net and the peers' lambdas they give
    floors.json                    the metrics' noise floors on the held-out clips
    choice.json                    the rule's choice per kind (written once, from the screening seed only)
    timings/<run>-<results>.json   measured evaluation seconds, for the status estimate
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...io import write_json
from ...metrics.audio import difference_floor
from ...models.diffwave import build_diffwave, save_lmnt_checkpoint
from ...training.checkpoint import load_checkpoint
from ..core.compare import compare
from ..core.runs import RunResult, run, run_state, snapshot_path
from ..core.study import archive_study, committed_copy, install_committed, read_study_record, run_stages
from ..core.study import run_all as study_run_all
from .plan import (
    AB_AUDIO,
    BASELINE,
    STUDY,
    AbAudioPlan,
    PlanError,
    Point,
    eval_points,
    finetune_config,
    plan_hash,
    pretrain_config,
    pretrained_path,
    screen_points,
    study_dir,
)
from .rule import RULE, choose

TABLE_SKIP = ("seconds_per_step", "fad", "utmos")  # not measured here (timing; FAD/UTMOS need downloads)


class StageNotReady(PlanError):
    """A stage was asked for before the stage it builds on is complete."""


def _timing(cfg: Any, res: RunResult) -> dict[str, Any]:
    return {"schedule": cfg.sample.schedule, "n_clips": res.metrics["n_clips"]}


def run_all(plan: AbAudioPlan, root: Path, configs: list[Any], say: Callable[[str], None]) -> list[RunResult]:
    """:func:`..core.study.run_all` on the audio experiment, timings in the study's folder."""
    return study_run_all(AB_AUDIO, root, configs, study_dir(plan, root), say, _timing)


# -- stage 1: pretrain ----------------------------------------------------------------------------------------


def run_pretrain(plan: AbAudioPlan, root: Path, say: Callable[[str], None] = print) -> Path:
    """Train (or resume) the pretraining run, evaluate it once, and write its EMA net in LMNT's layout."""
    cfg = pretrain_config(plan)
    path = pretrained_path(plan, root)
    if install_committed(path, STUDY, plan.profile):  # the repository's copy of this very pretraining
        return path
    run_all(plan, root, [cfg], say)
    if not path.is_file():
        snap = load_checkpoint(snapshot_path(AB_AUDIO, cfg, root))
        model = build_diffwave(cfg.model.arch())
        model.load_state_dict(snap["model"])  # the sampling model: the EMA copy
        save_lmnt_checkpoint(model, path, step=cfg.train.steps)
        say(f"pretrained checkpoint: {path}")
    return path


def pretrain_done(plan: AbAudioPlan, root: Path) -> bool:
    path = pretrained_path(plan, root)
    return path.is_file() or committed_copy(path, STUDY, plan.profile).is_file()


# -- stage 2: screen ------------------------------------------------------------------------------------------


def _round2(x: float) -> float:
    return float(f"{x:.2g}")


@torch.no_grad()
def calibrate(plan: AbAudioPlan, root: Path) -> dict[str, Any]:
    """The mean L_S of every kind and peer (lambda 1, "sum") at the pretrained net, over the same training batches
    (same crops, steps t and noise for each), and the peers' lambdas: lambda_ref x E[L_ref] / E[L_peer] for each
    of the reference kind's lambdas (2 significant digits), so a peer's term has the reference's size."""
    path = study_dir(plan, root) / "calibration.json"
    record = read_study_record(path, STUDY, plan.profile)
    key = {"plan": plan_hash(plan), "checkpoint": pretrained_path(plan, root).name}
    if record and record.get("key") == key:
        return record
    sizes, diffusion = {}, None
    for kind in (*plan.kinds, *plan.peers):
        cfg = finetune_config(plan, root, Point(kind, 1.0, "sum", plan.screen_seed))
        model, loss, data = AB_AUDIO.build_model(cfg).eval(), AB_AUDIO.build_loss(cfg), AB_AUDIO.build_data(cfg)
        g = torch.Generator().manual_seed(plan.screen_seed)
        parts = [loss(model, *data(cfg.train.batch_size, g), generator=g, return_parts=True)
                 for _ in range(plan.calibration_batches)]
        sizes[kind] = float(torch.cat([p["spectral"] for p in parts]).mean())
        diffusion = float(torch.cat([p["diffusion"] for p in parts]).mean())
    ref = sizes[plan.reference_kind]
    peers = {p: [_round2(lam * ref / sizes[p]) for lam in plan.lambdas] for p in plan.peers}
    record = {"key": key, "spectral_mean": sizes, "diffusion_mean": diffusion, "reference_kind":
              plan.reference_kind, "peer_lambdas": peers}
    write_json(path, record)
    return record


def peer_lambdas(plan: AbAudioPlan, root: Path) -> dict[str, tuple[float, ...]] | None:
    """The peers' lambdas once calibrated (None before the pretrained net exists)."""
    if not plan.peers:
        return {}
    record = read_study_record(study_dir(plan, root) / "calibration.json", STUDY, plan.profile)
    if not record or record.get("key") != {"plan": plan_hash(plan), "checkpoint": pretrained_path(plan, root).name}:
        return None
    return {p: tuple(v) for p, v in record["peer_lambdas"].items()}


def noise_floors_for(plan: AbAudioPlan, root: Path, write: bool = True) -> dict[str, float]:
    """Each metric's noise floor on this plan's held-out clips (``metrics.audio.noise_floors``), cached in
    floors.json; ``write=False`` reads the cache or computes without writing (``--status`` and the table)."""
    path = study_dir(plan, root) / "floors.json"
    cfg = finetune_config(plan, root, Point(BASELINE, None, "sum", plan.screen_seed))
    key = {"corpus": plan.corpus, "sample": AB_AUDIO.results_hash(cfg), "n_mels": cfg.model.n_mels}
    record = read_study_record(path, STUDY, plan.profile)
    if record and record.get("key") == key:
        return record["floors"]
    from ...metrics.audio import noise_floors

    refs, _ = AB_AUDIO.eval_clips(cfg)
    ev = cfg.evaluate
    floors = noise_floors(refs, cfg.mel_config().sample_rate, pesq=ev.pesq, n_mels=cfg.model.n_mels, ndb_k=ev.ndb_k,
                          ndb_alpha=ev.ndb_alpha, max_feature_frames=ev.max_feature_frames)
    floors = {k: float(v) for k, v in floors.items() if v is not None and math.isfinite(float(v))}
    if write:
        write_json(path, {"key": key, "floors": floors})
    return floors


def run_screen(plan: AbAudioPlan, root: Path, say: Callable[[str], None] = print) -> list[RunResult]:
    if not install_committed(pretrained_path(plan, root), STUDY, plan.profile):
        raise StageNotReady("the screen fine-tunes start from the pretrained checkpoint, which is not written yet; "
                            "run --stage pretrain first (or --stage all)")
    calibrate(plan, root)
    configs = [finetune_config(plan, root, p) for p in screen_points(plan, peer_lambdas(plan, root))]
    return run_all(plan, root, configs, say)


def screen_metrics(plan: AbAudioPlan, root: Path) -> dict[tuple, dict[str, float]] | None:
    """(variant, lambda, bins) -> metrics of every screening run, or None while any is not done."""
    peers = peer_lambdas(plan, root)
    if peers is None or not pretrain_done(plan, root):
        return None
    out = {}
    for p in screen_points(plan, peers):
        cfg = finetune_config(plan, root, p)
        if run_state(AB_AUDIO, cfg, root)[0] != "done":
            return None
        out[p.row] = run(AB_AUDIO, cfg, root).metrics  # only re-read
    return out


def choice(plan: AbAudioPlan, root: Path, write: bool = True) -> dict[str, Any] | None:
    """The rule's choice per kind and peer (choice.json, written once from the complete screen), or None while
    the screen is not complete. ``write=False`` (``--status``, the table, the notebook) reads choice.json or
    computes the same choice in memory, writing nothing: only the stages write the study's files."""
    path = study_dir(plan, root) / "choice.json"
    key = {"plan": plan_hash(plan), "checkpoint": pretrained_path(plan, root).name}
    record = read_study_record(path, STUDY, plan.profile)
    if record and record.get("key") == key:
        return record
    metrics = screen_metrics(plan, root)
    if metrics is None:
        return None
    floor = noise_floors_for(plan, root, write).get("fd_mel", 0.0)
    base = metrics[(BASELINE, None, "sum")]
    chosen = {}
    for kind in (*plan.kinds, *plan.peers):
        screen = {lam: m for (v, lam, bins), m in metrics.items() if v == kind and bins == "sum"}
        chosen[kind] = choose(screen, base, floor)
    record = {"key": key, "rule": RULE, "fd_mel_floor": floor, "baseline": {m: base.get(m) for m in
              ("fd_mel", "mr_stft")}, "chosen": chosen,
              "screen": [{"variant": v, "lambda": lam, "bins": b, **{k: m.get(k) for k in ("fd_mel", "mr_stft",
                         "pesq", "ndb")}} for (v, lam, b), m in metrics.items()]}
    if write:
        write_json(path, record)
    return record


# -- stage 3: evaluate ----------------------------------------------------------------------------------------


def evaluate_configs(plan: AbAudioPlan, root: Path, write: bool = True) -> list[Any] | None:
    """The evaluation runs at the rule's choice, or None while the screen is not complete (``write``: as in
    :func:`choice`)."""
    record = choice(plan, root, write)
    if record is None:
        return None
    chosen = {k: v["lambda"] for k, v in record["chosen"].items()}
    return [finetune_config(plan, root, p) for p in eval_points(plan, chosen)]


def run_evaluate(plan: AbAudioPlan, root: Path, say: Callable[[str], None] = print) -> list[RunResult]:
    configs = evaluate_configs(plan, root)
    if configs is None:
        raise StageNotReady("the evaluation seeds run at the lambdas the rule chooses from the complete screen; "
                            "run --stage screen first (or --stage all)")
    return run_all(plan, root, configs, say)


def run_study(plan: AbAudioPlan, root: str | Path, stage: str = "all", say: Callable[[str], None] = print
              ) -> list[RunResult]:
    """Run ``stage`` ("pretrain" | "screen" | "evaluate") or every stage in order ("all")."""
    root = Path(root)
    return run_stages({"pretrain": lambda: run_pretrain(plan, root, say) and [],
                       "screen": lambda: run_screen(plan, root, say),
                       "evaluate": lambda: run_evaluate(plan, root, say)}, stage)


# -- the table ------------------------------------------------------------------------------------------------


def archive(plan: AbAudioPlan, root: str | Path, say: Callable[[str], None] = print) -> dict[str, int]:
    """Copy the finished screening and evaluation runs' metrics and the calibration, floors and choice into the
    checkout, to be committed (``core.study.archive_study``; the pretrained net is committed already): a fresh
    clone resumes the study there and rebuilds its table. Runs that are not finished are left to the workers."""
    root = Path(root)
    peers = peer_lambdas(plan, root)
    configs = [finetune_config(plan, root, p) for p in screen_points(plan, peers)] if peers is not None else []
    configs += evaluate_configs(plan, root, write=False) or []
    return archive_study(AB_AUDIO, root, configs, [study_dir(plan, root) / n for n in ("calibration.json",
                         "floors.json", "choice.json")], STUDY, plan.profile, say=say)


def table_metrics(metrics: list[dict[str, Any]]) -> list[str]:
    """The audio experiment's declared metrics (glossary order) that the runs report, timing and downloads left
    out: mr_stft, pesq, ndb, fd_mel, and whatever the experiment declares besides (e.g. pitch errors)."""
    return [m for m in AB_AUDIO.glossary if m not in TABLE_SKIP and any(m in r for r in metrics)]


def evaluation_values(plan: AbAudioPlan, root: str | Path) -> tuple[dict[tuple, dict[int, dict[str, float]]],
                                                                     list[str]]:
    """The finished evaluation runs' metrics, only re-read: ({(variant, schedule): {seed: {metric: value}}}, the
    table's metrics). A metric a run could not measure (None, e.g. no voiced frame for the pitch error) is left out
    for that seed."""
    root = Path(root)
    values: dict[tuple, dict[int, dict[str, Any]]] = {}
    for cfg in evaluate_configs(plan, root, write=False) or []:
        if run_state(AB_AUDIO, cfg, root)[0] == "done":
            reg = cfg.regularizer
            key = (BASELINE if reg is None else reg.name, cfg.sample.schedule)  # name: haar, bior1.3, or the kind
            values.setdefault(key, {})[cfg.train.seed] = run(AB_AUDIO, cfg, root).metrics
    metrics = table_metrics([m for by_seed in values.values() for m in by_seed.values()])
    numeric = {k: {s: {m: float(v[m]) for m in metrics if isinstance(v.get(m), int | float)} for s, v in
                   sorted(by_seed.items())} for k, by_seed in values.items()}
    return numeric, metrics


def seed_table(plan: AbAudioPlan, root: str | Path) -> Any:
    """The evaluation runs' values one row per (variant, schedule, seed, metric): what the paired differences of
    :func:`ab_table` are made of, for the per-seed figure and the seed-influence sentences."""
    import pandas as pd

    numeric, _ = evaluation_values(plan, root)
    rows = [{"variant": variant, "schedule": schedule, "seed": seed, "metric": m, "value": v}
            for (variant, schedule), by_seed in numeric.items() for seed, ms in by_seed.items() for m, v in ms.items()]
    return pd.DataFrame(rows, columns=["variant", "schedule", "seed", "metric", "value"])


def ab_table(plan: AbAudioPlan, root: str | Path, alpha: float = 0.05) -> Any:
    """One row per (variant, schedule, metric) over the finished evaluation runs: the chosen lambda, the mean over
    seeds, the paired difference to the baseline of the same seed and schedule with its SE, the paired t-test p
    (``core.compare``), the metric's noise floor and whether |difference| exceeds it (None without a floor)."""
    import pandas as pd

    root = Path(root)
    record = choice(plan, root, write=False)  # read-only: the stages write choice.json and floors.json
    numeric, metrics = evaluation_values(plan, root)
    floors = noise_floors_for(plan, root, write=False) if numeric else {}
    long = compare(numeric, metrics, AB_AUDIO.glossary, reference=lambda key: (BASELINE, key[1]), alpha=alpha)
    rows = []
    for r in long.to_dict("records"):
        variant, schedule = r["row"]
        floor = floors.get(r["metric"])
        floor = None if floor is None else difference_floor(r["metric"], floor)  # PESQ: its distance from perfect
        diff = r["diff"]
        rows.append({"variant": variant, "schedule": schedule,
                     "lambda": None if variant == BASELINE else record["chosen"][variant]["lambda"],
                     "metric": r["metric"], "seeds": r["n"], "mean": r["mean"], "diff": diff, "diff_se": r["diff_se"],
                     "p": r["p"], "direction": r["direction"], "floor": floor,
                     "exceeds_floor": None if floor is None or not np.isfinite(diff) else bool(abs(diff) > floor),
                     "note": r["note"]})
    return pd.DataFrame(rows)

