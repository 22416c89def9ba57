"""What the image A/B study runs: its plan (profiles smoke and cpu) and the EDM config of every run.

Table 1's protocol at CPU scale, per stand-in (``photos``, ``dead_leaves``; experiment.py), on the EDM path:

* ``pretrain``: a small DDPM++ SongUNet under EDM's preconditioning, initialised from a fixed seed, trained from
  scratch with EDM's loss (baseline) on the stand-in's training zip; its EMA net is written as an EDM pickle
  (:func:`pretrained_path`) that every fine-tune loads through ``model.checkpoint``, as the paper's runs load
  NVIDIA's checkpoints.
* ``screen``: fine-tunes on the screening seed only: the baseline; each L_S kind under each weighting, and each
  peer, at every strength rho. A strength is the ratio of the spectral term's gradient norm to EDM's loss's at the
  pretrained net (``calibrate`` in study.py): lambda_spec = rho / (||grad w L_S|| / ||grad L_EDM||), so every kind
  and peer is screened at the same relative strengths (the paper's lambda = 1 is 1e-6..1e-3 of EDM's summed
  loss's gradient here, as on the real checkpoints: docs/edm_finetune.md).
* ``evaluate``: the baseline and every (kind, weighting) and peer at the strength the rule chose (rule.py), on the
  evaluation seeds (disjoint from the screening seed). Every run draws its samples from the same generation seeds,
  so every variant of one training seed is scored on the same noise: the pairing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...spectral import IMAGE_PEERS
from ..core.config import config_hash
from .experiment import AB_IMAGES, STANDINS, AbImagesConfig, dataset_path

BASELINE = "baseline"
KINDS = ("amp", "amp_phase", "haar", "bior1.3")  # Eqs. 14-16, the paper's four (EDM_VARIANTS' options)
WEIGHTINGS = ("weighted", "unweighted")  # w = lambda_EDM(sigma) (the EDM experiment's default) or 1
PEERS = IMAGE_PEERS  # registered kinds (spectral/image_peers.py)
PEER_WEIGHTING = "weighted"  # the peers take EDM's own weighting, as k-diffusion's multiscale loss does
STAGES = ("pretrain", "screen", "evaluate", "ablate")


class PlanError(InputError, ValueError):
    """An A/B image plan value outside its choices; the message names the field and what to choose."""


@dataclass(frozen=True)
class AbImagesPlan:
    """The study: stand-ins, the net, each stage's overrides, the grid of strengths and the seeds."""

    profile: str = "smoke"
    datasets: tuple[str, ...] = tuple(STANDINS)
    resolution: int = 32
    model_channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2, 2)
    train_images: int = 8192
    pretrain: tuple[tuple[str, Any], ...] = ()  # dotted overrides of the pretraining run
    finetune: tuple[tuple[str, Any], ...] = ()  # dotted overrides of every fine-tune
    kinds: tuple[str, ...] = KINDS
    weightings: tuple[str, ...] = WEIGHTINGS
    peers: tuple[str, ...] = PEERS
    strengths: tuple[float, ...] = (0.01, 0.1, 1.0)  # rho: spectral / diffusion gradient norm at the pretrained net
    screen_seed: int = 0
    eval_seeds: tuple[int, ...] = (1, 2, 3)
    calibration_batches: int = 8

    def __post_init__(self) -> None:
        if not self.datasets or not set(self.datasets) <= set(STANDINS):
            raise PlanError(f"datasets {self.datasets}: choose from {tuple(STANDINS)}")
        if not self.strengths or any(not s > 0 for s in self.strengths) or len(set(self.strengths)) != len(
                self.strengths):
            raise PlanError(f"strengths {self.strengths}: need distinct values > 0")
        if self.screen_seed in self.eval_seeds or not self.eval_seeds:
            raise PlanError(f"eval_seeds {self.eval_seeds} must be non-empty and exclude the screening seed "
                            f"{self.screen_seed}: a strength is never scored on the seed that chose it")
        if not set(self.weightings) <= set(WEIGHTINGS) or not self.weightings:
            raise PlanError(f"weightings {self.weightings}: choose from {WEIGHTINGS}")


def check_kinds(plan: AbImagesPlan) -> None:
    """Every kind is a variant of the EDM experiment and every peer a registered spectral kind."""
    from ...spectral import KINDS as REGISTERED

    bad = [k for k in plan.kinds if k not in AB_IMAGES.variants or k == BASELINE]
    bad += [p for p in plan.peers if p not in REGISTERED]
    if bad:
        raise PlanError(f"unknown regularizer(s) {bad}: kinds from {KINDS}, peers from the registered kinds "
                        "(spectral/image_peers.py registers pixel_l1, dct_multiscale, focal_freq, facl)")


# The cpu study (docs/ab_images.md gives the budget, measured on one core of the build machine): a 16-channel
# DDPM++ SongUNet with three levels (32, 16, 8 px), one block each, no attention (0.31 M parameters for RGB; a step
# at batch 16 takes 0.19 s, a forward pass of 256 images 1.75 s); pretrained 5,000 steps at batch 32 (160 kimg), lr
# 4e-4 after a 8 kimg ramp, EMA half-life 10 kimg, EDM's augment pipe at p = 0.12 (the record of the initial file).
# Fine-tunes: Table 3 scaled down: lr a quarter of the pretraining's (Table 3's 5e-5 against EDM's 2e-4), batch 16,
# 300 steps (4.8 kimg) with the EMA half-life equal to the duration (Table 3: 0.5 Mimg each), a ramp of 2% of it,
# augment p = 0.15, the net's dropout (0.1). Sampling: EDM's Heun with 12 steps (23 evaluations) for 512 images.
_CPU_PRETRAIN = {"train.steps": 5000, "train.batch_size": 32, "train.lr": 4e-4, "train.lr_rampup_kimg": 8.0,
                 "train.ema_halflife_kimg": 10.0, "train.checkpoint_every": 250, "augment.p": 0.12}
_CPU_FINETUNE = {"finetune.duration_kimg": 4.8, "train.batch_size": 16, "train.lr": 1e-4,
                 "train.lr_rampup_kimg": 0.1, "train.ema_halflife_kimg": 4.8, "train.checkpoint_every": 100,
                 "augment.p": 0.15}
_CPU_SAMPLE = {"sample.n_samples": 512, "sample.num_steps": 12, "evaluate.n_reference": 1024}
# smoke: a tiny net, a few steps per stage, 2 strengths, 1 evaluation seed: the same code in seconds
_SMOKE_PRETRAIN = {"train.steps": 4, "train.batch_size": 4, "train.lr": 1e-3, "train.lr_rampup_kimg": 0.0,
                   "train.ema_halflife_kimg": 0.01, "train.checkpoint_every": 0, "augment.p": 0.12}
_SMOKE_FINETUNE = {"finetune.duration_kimg": 0.008, "train.batch_size": 4, "train.lr": 1e-3,
                   "train.lr_rampup_kimg": 0.0, "train.ema_halflife_kimg": 0.008, "train.checkpoint_every": 0,
                   "augment.p": 0.15}
_SMOKE_SAMPLE = {"sample.n_samples": 8, "sample.num_steps": 2, "evaluate.n_reference": 16}

PLANS: dict[str, AbImagesPlan] = {
    "smoke": AbImagesPlan("smoke", resolution=16, model_channels=8, channel_mult=(1, 2), train_images=32,
                          pretrain=tuple({**_SMOKE_PRETRAIN, **_SMOKE_SAMPLE}.items()),
                          finetune=tuple({**_SMOKE_FINETUNE, **_SMOKE_SAMPLE}.items()),
                          strengths=(0.1, 1.0), eval_seeds=(1,), calibration_batches=1),
    "cpu": AbImagesPlan("cpu", pretrain=tuple({**_CPU_PRETRAIN, **_CPU_SAMPLE}.items()),
                        finetune=tuple({**_CPU_FINETUNE, **_CPU_SAMPLE}.items())),
}


def ab_images_plan(profile: str, **changes: Any) -> AbImagesPlan:
    """The named plan (``smoke`` | ``cpu``), with ``changes`` to its fields (e.g. ``peers=()``)."""
    if profile not in PLANS:
        raise PlanError(f"unknown profile {profile!r} (--profile): choose one of {', '.join(PLANS)}")
    plan = dataclasses.replace(PLANS[profile], **changes)
    check_kinds(plan)
    return plan


def study_dir(plan: AbImagesPlan, root: str | Path) -> Path:
    """``<root>/ab_images/<profile>/``: initial and pretrained nets, calibration, floors, choice, timings."""
    return Path(root) / "ab_images" / plan.profile


def arch_tag(plan: AbImagesPlan, dataset: str) -> str:
    """A short hash of the initial net's architecture (names its file)."""
    return config_hash({"resolution": plan.resolution, "channels": plan.model_channels, "mult": plan.channel_mult,
                        "img_channels": STANDINS[dataset].channels})


def init_path(plan: AbImagesPlan, root: str | Path, dataset: str) -> Path:
    """The from-scratch initial net of ``dataset``'s pretraining (written by the study from a fixed seed)."""
    return (study_dir(plan, root) / f"init-{dataset}-{arch_tag(plan, dataset)}.pkl").resolve()


# -- configs -------------------------------------------------------------------------------------------------


def _data(plan: AbImagesPlan, dataset: str) -> dict[str, Any]:
    return {"data.path": str(dataset_path(dataset, plan.resolution, plan.train_images)), "data.dataset": dataset,
            "data.standin_images": plan.train_images, "evaluate.reference": dataset}


def pretrain_config(plan: AbImagesPlan, root: str | Path, dataset: str) -> AbImagesConfig:
    """The pretraining run of ``dataset``: EDM's loss alone from the initial net (training seed 0)."""
    return AB_IMAGES.config(plan.profile, {**_data(plan, dataset), "model.checkpoint": str(init_path(plan, root,
                            dataset)), "regularizer": None, "train.seed": 0, **dict(plan.pretrain)})


def pretrained_path(plan: AbImagesPlan, root: str | Path, dataset: str) -> Path:
    """The pretrained EMA net as an EDM pickle, named by the pretraining run and its steps (so a changed
    pretraining gives new fine-tunes: the path is part of their run hash)."""
    cfg = pretrain_config(plan, root, dataset)
    name = f"pretrained-{dataset}-{AB_IMAGES.run_hash(cfg)}-step{AB_IMAGES.train_config(cfg).steps:07d}.pkl"
    return (study_dir(plan, root) / name).resolve()


@dataclass(frozen=True)
class Point:
    """One fine-tune: stand-in, variant (baseline, kind or peer), weighting, strength rho, lambda_spec and seed."""

    dataset: str
    variant: str
    weighting: str | None
    strength: float | None
    lambda_spec: float | None
    seed: int

    @property
    def row(self) -> tuple[str, str, str | None, float | None]:
        return (self.dataset, self.variant, self.weighting, self.strength)


def finetune_config(plan: AbImagesPlan, root: str | Path, point: Point) -> AbImagesConfig:
    """The fine-tune of ``point`` from the pretrained checkpoint of its stand-in."""
    over: dict[str, Any] = {**_data(plan, point.dataset), "model.checkpoint": str(pretrained_path(
        plan, root, point.dataset)), **dict(plan.finetune), "train.seed": point.seed}
    if point.variant == BASELINE:
        over["regularizer"] = None
    else:
        over |= {"regularizer": point.variant, "regularizer.lambda_spec": point.lambda_spec,
                 "regularizer.weighting": point.weighting}
    return AB_IMAGES.config(plan.profile, over)


def regularized(plan: AbImagesPlan) -> list[tuple[str, str]]:
    """Every (variant, weighting) the study regularizes with: each kind under each weighting, each peer once."""
    return [(k, w) for k in plan.kinds for w in plan.weightings] + [(p, PEER_WEIGHTING) for p in plan.peers]


def screen_points(plan: AbImagesPlan, dataset: str, lambdas: dict[str, dict[str, float]] | None) -> list[Point]:
    """The screening fine-tunes of ``dataset`` on the screening seed; the regularized ones once calibrated
    (``lambdas``: "variant/weighting" -> {str(rho): lambda_spec})."""
    s = plan.screen_seed
    out = [Point(dataset, BASELINE, None, None, None, s)]
    if lambdas is not None:
        out += [Point(dataset, v, w, rho, lambdas[f"{v}/{w}"][str(rho)], s) for v, w in regularized(plan)
                for rho in plan.strengths]
    return out


def eval_points(plan: AbImagesPlan, dataset: str, chosen: dict[str, dict[str, Any]]) -> list[Point]:
    """The evaluation fine-tunes of ``dataset``: baseline and every (variant, weighting) at its chosen strength,
    per evaluation seed (seeds outermost, so a partial study already holds complete pairs)."""
    out = []
    for seed in plan.eval_seeds:
        out.append(Point(dataset, BASELINE, None, None, None, seed))
        for v, w in regularized(plan):
            c = chosen[f"{v}/{w}"]
            out.append(Point(dataset, v, w, c["strength"], c["lambda"], seed))
    return out


def plan_hash(plan: AbImagesPlan) -> str:
    """A short hash of the plan (what its calibration-, choice- and ablation-<dataset>.json were made under). The
    stand-ins a worker runs (``--dataset``) are left out: they change no per-stand-in decision, so workers on one
    stand-in and on both share these files."""
    return config_hash({k: v for k, v in dataclasses.asdict(plan).items() if k != "datasets"})
