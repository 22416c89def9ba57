"""What the audio A/B study runs: its plan (profiles smoke and cpu), and the DiffWave config of every run.

Table 2's protocol at CPU scale, on the audio experiment ("diffwave") with overrides only (its own profiles and
run hashes are untouched):

* ``pretrain``: a small DiffWave (LMNT's class) trained from scratch on the plan's corpus as the baseline, with
  an EMA; its EMA weights are written in LMNT's checkpoint layout (:func:`pretrained_path`), which every fine-tune
  loads through ``model.checkpoint`` as the paper's runs load LMNT's checkpoint.
* ``screen``: fine-tunes on the screening seed only: the baseline; each L_S kind at every lambda under
  ``bins="sum"`` (the audio experiment's reduction); each kind once under ``bins="mean"`` at the lambda that
  matches ``matched_lambda`` under "sum" (:func:`matched_lambda`); the peers at the lambdas that give their term
  the size of the reference kind's term (``calibrate`` in study.py).
* ``evaluate``: the baseline and every kind and peer at the lambda the rule chose, on the evaluation seeds
  (disjoint from the screening seed, so the choice is not scored on the data it was made on), each vocoded with
  the fast (6-step) and the full (50-step) schedule. Vocoding noise depends on the training seed only
  (``LATENT_SEED + seed``), so every variant of one seed is scored on the same latents: the pairing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...errors import InputError
from ..audio.experiment import AudioConfig, AudioExperiment
from ..core.config import config_hash


class AbAudioExperiment(AudioExperiment):
    """DiffWave as the study runs it. Its fine-tunes start from the study's own pretrained net, whose FILE NAME
    carries what makes its bytes (its pretraining's run hash and steps: :func:`pretrained_path`), so that field enters
    a run's hash by name, not location: a clone in another folder, or another ``--root``, finds the same run folders
    and the archived results (``core.runs``). Any other path is hashed as the audio experiment hashes it."""

    location_fields = {**AudioExperiment.location_fields, "model.checkpoint": "by_name"}
    task = None  # reached through ``specreg ab-audio`` only


AB_AUDIO = AbAudioExperiment()

BASELINE = "baseline"
KINDS = ("amp", "amp_phase", "haar", "bior1.3")  # Eqs. 14-16, the paper's four
PEERS = ("mrstft", "logmel_l1")  # registered spectral kinds on x0_hat (specreg_lib/spectral/peers.py)
STAGES = ("pretrain", "screen", "evaluate")
SCHEDULES = ("fast", "full")
HOP = 256  # LMNT's mel hop: a crop of F mel frames is F * 256 samples


class PlanError(InputError, ValueError):
    """An A/B audio plan value outside its choices; the message names the field and what to choose."""


@dataclass(frozen=True)
class AbAudioPlan:
    """The study: which DiffWave profile it builds on, the overrides of each stage, the grid and the seeds."""

    profile: str = "smoke"
    base_profile: str = "smoke"  # the audio experiment's profile every config starts from
    corpus: str = "standin"
    pretrain: tuple[tuple[str, Any], ...] = ()  # dotted overrides of the pretraining run
    finetune: tuple[tuple[str, Any], ...] = ()  # dotted overrides of every fine-tune
    kinds: tuple[str, ...] = KINDS
    peers: tuple[str, ...] = PEERS
    lambdas: tuple[float, ...] = (1e-4, 1e-5, 1e-6)
    matched_lambda: float = 1e-5  # the "sum" lambda the "mean" runs match
    reference_kind: str = "amp"  # the peers' lambdas give their term this kind's size at each lambda
    screen_seed: int = 0
    eval_seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    schedules: tuple[str, ...] = SCHEDULES
    calibration_batches: int = 8  # training batches the term sizes are averaged over

    def __post_init__(self) -> None:
        if self.reference_kind not in self.kinds:
            raise PlanError(f"reference_kind {self.reference_kind!r} must be one of the kinds {self.kinds}")
        if not self.lambdas or any(not 0 < lam < 1 for lam in self.lambdas) or len(set(self.lambdas)) != len(
                self.lambdas):
            raise PlanError(f"lambdas {self.lambdas}: need distinct values in (0, 1)")
        if self.screen_seed in self.eval_seeds or not self.eval_seeds:
            raise PlanError(f"eval_seeds {self.eval_seeds} must be non-empty and exclude the screening seed "
                            f"{self.screen_seed}: a lambda is never scored on the seed that chose it")
        if not set(self.schedules) <= set(SCHEDULES) or "fast" not in self.schedules:
            raise PlanError(f"schedules {self.schedules}: choose from {SCHEDULES}, 'fast' included (the rule "
                            "screens on it)")


def check_kinds(plan: AbAudioPlan) -> None:
    """Every kind and peer of the plan is a variant of the audio experiment or a registered spectral kind (checked
    where a plan is used, not at import: the peers' module registers them when it is imported)."""
    from ...spectral import KINDS as REGISTERED

    known = [v for v in AB_AUDIO.variants if v != BASELINE]
    unknown = [k for k in (*plan.kinds, *plan.peers) if k not in known and k not in REGISTERED]
    if unknown:
        raise PlanError(f"unknown regularizer(s) {unknown}: choose from {', '.join(known)} (the peers mrstft and "
                        "logmel_l1 are registered by specreg_lib/spectral/peers.py)")


# The cpu study (docs/ab_audio.md gives the budget): a 12 x 32 DiffWave (dilation cycle 6: dilations 1..32 twice,
# kernel 3, so a receptive field of 1 + 2 x 2 x 63 = 253 samples, 11 ms; LMNT's 30 x 64 sees 6,139) pretrained
# 8,000 steps on 16-frame crops (4,096 samples) in batches of 8 at lr 5e-4 with an EMA of decay 0.999; fine-tunes of 200
# steps at LMNT's lr 2e-4 without EMA (LMNT's setting), scored on 6 held-out clips of up to 120 frames (2.8 s).
_CPU_COMMON = {"data.crop_mel_frames": 16, "train.batch_size": 8, "train.precision": "fp32", "train.device": "cpu",
               "threads": 1, "sample.n_clips": 6, "sample.max_frames": 120, "sample.batch_size": 6,
               "evaluate.fad_embedding": "mel", "evaluate.ndb_k": 10, "train.progress": False}
_CPU_PRETRAIN = {**_CPU_COMMON, "model.residual_layers": 12, "model.residual_channels": 32,
                 "model.dilation_cycle_length": 6, "train.steps": 8000, "train.lr": 5e-4, "train.ema_decay": 0.999,
                 "train.checkpoint_every": 500}
_CPU_FINETUNE = {**_CPU_COMMON, "train.steps": 200, "train.lr": 2e-4, "train.ema_decay": 0.0,
                 "train.checkpoint_every": 100}
# smoke: the audio experiment's smoke net (4 x 8, 20 mels) and data; a few steps per stage, 2 lambdas, 1 seed
_SMOKE_PRETRAIN = {"train.steps": 6, "train.ema_decay": 0.9, "train.progress": False}
_SMOKE_FINETUNE = {"train.steps": 3, "train.progress": False}

PLANS: dict[str, AbAudioPlan] = {
    "smoke": AbAudioPlan("smoke", "smoke", "standin", tuple(_SMOKE_PRETRAIN.items()), tuple(_SMOKE_FINETUNE.items()),
                         lambdas=(1e-4, 1e-5), eval_seeds=(1,), calibration_batches=2),
    "cpu": AbAudioPlan("cpu", "cpu", "multivoice", tuple(_CPU_PRETRAIN.items()), tuple(_CPU_FINETUNE.items())),
}


def ab_audio_plan(profile: str, **changes: Any) -> AbAudioPlan:
    """The named plan (``smoke`` | ``cpu``), with ``changes`` to its fields (e.g. ``peers=()``)."""
    if profile not in PLANS:
        raise PlanError(f"unknown profile {profile!r} (--profile): choose one of {', '.join(PLANS)}")
    plan = dataclasses.replace(PLANS[profile], **changes)
    check_kinds(plan)
    return plan


STUDY = "ab_audio"  # its folder under the runs root, and under data/pretrained for the committed files


def study_dir(plan: AbAudioPlan, root: str | Path) -> Path:
    """``<root>/ab_audio/<profile>/``: the pretrained checkpoint, calibration, choice and timings of the plan."""
    return Path(root) / STUDY / plan.profile


# -- configs -------------------------------------------------------------------------------------------------


def pretrain_config(plan: AbAudioPlan) -> AudioConfig:
    """The pretraining run: the baseline loss from a fresh init on the plan's corpus (training seed 0)."""
    return AB_AUDIO.config(plan.base_profile, {"data.corpus": plan.corpus, "regularizer": None, "train.seed": 0,
                                                **dict(plan.pretrain)})


def pretrained_path(plan: AbAudioPlan, root: str | Path) -> Path:
    """Where the pretrained EMA net is written in LMNT's layout, named by the pretraining run and its steps, so
    a changed pretraining gives new fine-tunes (the path is part of their run hash)."""
    cfg = pretrain_config(plan)
    name = f"pretrained-{AB_AUDIO.run_hash(cfg)}-step{cfg.train.steps:07d}.pt"
    return (study_dir(plan, root) / name).resolve()


@dataclass(frozen=True)
class Point:
    """One fine-tune: a variant (baseline, kind or peer), its lambda and reduction, the seed and the schedule."""

    variant: str
    lambda_spec: float | None
    bins: str
    seed: int
    schedule: str = "fast"

    @property
    def row(self) -> tuple[str, float | None, str]:
        return (self.variant, self.lambda_spec, self.bins)


def finetune_config(plan: AbAudioPlan, root: str | Path, point: Point) -> AudioConfig:
    """The fine-tune of ``point`` from the pretrained checkpoint (constant lambda: weighting "unweighted")."""
    over: dict[str, Any] = {"data.corpus": plan.corpus, "model.checkpoint": str(pretrained_path(plan, root)),
                            **dict(plan.finetune), "loss.bins": point.bins, "train.seed": point.seed,
                            "sample.schedule": point.schedule}
    if point.variant == BASELINE:
        over["regularizer"] = None
    else:
        over |= {"regularizer": point.variant, "regularizer.lambda_spec": point.lambda_spec,
                 "regularizer.weighting": "unweighted"}
    return AB_AUDIO.config(plan.base_profile, over)


def crop_samples(plan: AbAudioPlan) -> int:
    """Samples in one training crop of the fine-tunes (what a "sum" term sums over)."""
    return AB_AUDIO.config(plan.base_profile, dict(plan.finetune)).data.crop_mel_frames * HOP


def bins_count(plan: AbAudioPlan, kind: str, draws: int = 64) -> float:
    """E[L_S(bins="sum")] / E[L_S(bins="mean")] of ``kind`` on one crop for a white error (3 significant digits),
    measured on ``draws`` fixed-seed Gaussian errors rather than written down per kind. For the Fourier kinds
    and the peers sum = count x mean for every input, so this is that count (rfft bins and channels). A wavelet's
    "mean" averages each band before summing the bands, so no single factor fits every input; for a white error
    every coefficient has the same expected size and the factor is (coefficients) / (bands)."""
    variant = AB_AUDIO.variants.get(kind)
    options = dict(variant.options) if variant is not None else {}
    from ...spectral import SpectralLoss

    g = torch.Generator().manual_seed(0)
    x, y = (torch.randn(draws, 1, crop_samples(plan), generator=g, dtype=torch.float64) for _ in range(2))
    name = variant.kind if variant is not None else kind
    total = SpectralLoss(name, **{**options, "bins": "sum"})(x, y).mean()
    mean = SpectralLoss(name, **{**options, "bins": "mean"})(x, y).mean()
    return float(f"{float(total / mean):.3g}")


def matched_lambda(plan: AbAudioPlan, kind: str) -> float:
    """The "mean" lambda of ``kind`` whose term matches the "sum" term at ``plan.matched_lambda``:
    lambda_mean = lambda_sum x :func:`bins_count` (exactly the same objective for the Fourier kinds, the same
    expected size for a white error for the wavelets); 3 significant digits, so it names a run stably."""
    return float(f"{plan.matched_lambda * bins_count(plan, kind):.3g}")


def screen_points(plan: AbAudioPlan, peer_lambdas: Mapping[str, tuple[float, ...]] | None) -> list[Point]:
    """Every screening fine-tune on the screening seed (fast schedule); peers only once their lambdas are known."""
    s = plan.screen_seed
    out = [Point(BASELINE, None, "sum", s)]
    out += [Point(k, lam, "sum", s) for k in plan.kinds for lam in plan.lambdas]
    out += [Point(k, matched_lambda(plan, k), "mean", s) for k in plan.kinds]
    if peer_lambdas is not None:
        out += [Point(p, lam, "sum", s) for p in plan.peers for lam in peer_lambdas[p]]
    return out


def eval_points(plan: AbAudioPlan, chosen: Mapping[str, float]) -> list[Point]:
    """The evaluation fine-tunes: baseline and every kind and peer at its chosen lambda, per seed and schedule
    (seeds outermost, so a partial study already holds complete pairs)."""
    out = []
    for seed in plan.eval_seeds:
        for variant in (BASELINE, *plan.kinds, *plan.peers):
            lam = None if variant == BASELINE else chosen[variant]
            out += [Point(variant, lam, "sum", seed, sched) for sched in plan.schedules]
    return out


def plan_hash(plan: AbAudioPlan) -> str:
    """A short hash of the plan (what its choice.json and calibration.json were made under)."""
    return config_hash(dataclasses.asdict(plan))
