"""The toy experiments on the experiment layer: a DDPM U-Net trained with and without a spectral regularizer.

Two experiments share one typed config (:class:`ToyConfig`) and one protocol (:class:`ToyExperiment`):
``checkerboard`` (paper Figs. 1-2: 64x64 checkerboards, see ``docs/toy.md``) and ``power_spectra``
(natural-image patches, the stand-in for AFHQ/FFHQ spectra). Each profile is a set of dotted overrides of
the dataclass defaults (which are the checkerboard ``cpu`` settings); nothing here knows a notebook or a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import torch
from torch import nn

from ...data import CheckerboardFamily, ImagePatches
from ...diffusion import DDPMLoss, DDPMSchedule, Regularizer, ancestral_sample, ddim_sample, ddim_timesteps
from ...metrics import floored_spectrum, spectral_log_distance, structure_metrics
from ...models import UNet, UNetConfig
from ...training import TrainConfig
from ..core.config import (
    MAX_IMAGES,
    MAX_THREADS,
    ConfigError,
    Range,
    Variant,
    check_ranges,
    check_run_fields,
    refuse,
)
from ..core.protocol import Experiment, Shorthand

DATASETS = ("checkerboard", "patches")
SAMPLERS = ("ancestral", "ddim")
REFERENCE_SEED = 10_007  # ground-truth images come from a seed apart from every training seed
LATENT_SEED = 20_000  # + run seed: latents depend on the seed only, so variants are paired


@dataclass(frozen=True)
class ToyData:
    """Training images: checkerboards (Figs. 1-2) or natural-image patches (stand-in for AFHQ/FFHQ)."""

    dataset: str = "checkerboard"
    size: Annotated[int, Range(2, 1024)] = 64
    sides: Annotated[tuple[int, ...], Range(1, 512)] = (2, 4)  # checkerboard cell sides in pixels
    patch_scale: Annotated[int, Range(1, 64)] = 2  # patches: average-pool factor of each crop

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.dataset not in DATASETS:
            raise refuse(self, "dataset", f"choose one of {', '.join(DATASETS)}", "checkerboard")
        self.build()  # validates size/sides/scale together

    def build(self) -> CheckerboardFamily | ImagePatches:
        if self.dataset == "checkerboard":
            return CheckerboardFamily(size=self.size, sides=self.sides)
        return ImagePatches(size=self.size, scale=self.patch_scale)


@dataclass(frozen=True)
class ToyModel:
    """The U-Net (``specreg_lib.models.UNet``); its resolution is the data size."""

    base_channels: Annotated[int, Range(1, 1024)] = 128
    channel_mult: Annotated[tuple[int, ...], Range(1, 16)] = (1, 1)
    num_res_blocks: Annotated[int, Range(1, 16)] = 1
    fold: Annotated[int, Range(1, 64)] = 8  # space-to-depth factor (8x8 blocks: see docs/toy.md)
    global_pool: bool = True

    def __post_init__(self) -> None:
        check_ranges(self)  # the architecture against the image size: ToyConfig.unet_config()


@dataclass(frozen=True)
class ToyDiffusion:
    """The DDPM: beta schedule, T, the network's output parametrisation (the loss is the eps-MSE of Eq. 3)."""

    schedule: str = "cosine_shifted"
    T: Annotated[int, Range(1, 100_000)] = 200
    snr_scale: Annotated[float, Range(0, 1e6, lo_open=True)] = 16.0  # cosine_shifted only: SNR divided by this
    parametrization: str = "v"

    def __post_init__(self) -> None:
        check_ranges(self)
        self.build()
        if self.parametrization not in ("eps", "x0", "v"):
            raise refuse(self, "parametrization", "choose eps, x0 or v", "v")

    def build(self) -> DDPMSchedule:
        kw = {"snr_scale": self.snr_scale} if self.schedule == "cosine_shifted" else {}
        return DDPMSchedule.from_kind(self.schedule, T=self.T, **kw)


@dataclass(frozen=True)
class ToySample:
    """How each run is sampled: sampler, number of samples, x0 clamp."""

    n_samples: Annotated[int, Range(1, MAX_IMAGES)] = 64
    sampler: str = "ancestral"
    sample_steps: Annotated[int, Range(0, 100_000)] = 0  # ddim only; 0 = all T (at most T: ToyConfig)
    clip_x0: Annotated[float, Range(0)] = 1.0  # clamp x0_hat while sampling; 0 = off

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.sampler not in SAMPLERS:
            raise refuse(self, "sampler", f"choose one of {', '.join(SAMPLERS)}", "ancestral")


@dataclass(frozen=True)
class ToyEvaluate:
    """What the samples are compared with: a ground-truth set, and the floor of the spectra."""

    n_reference: Annotated[int, Range(1, MAX_IMAGES)] = 256  # ground-truth images for the reference spectrum
    # spectra floored here before the log distance (white noise of std ~0.03)
    log_floor: Annotated[float, Range(0, lo_open=True)] = 1e-3

    def __post_init__(self) -> None:
        check_ranges(self)


def _toy_train() -> TrainConfig:
    return TrainConfig(steps=5000, batch_size=16, lr=1e-3, warmup_steps=200, ema_decay=0.999, grad_clip=1.0,
                       seed=1, device="cpu", checkpoint_every=500, log_every=50)


@dataclass(frozen=True)
class ToyConfig:
    """One toy run: data, model, diffusion, regularizer (None = baseline), train (incl. seed), sample, evaluate."""

    data: ToyData = field(default_factory=ToyData)
    model: ToyModel = field(default_factory=ToyModel)
    diffusion: ToyDiffusion = field(default_factory=ToyDiffusion)
    regularizer: Regularizer | None = field(default_factory=lambda: _amp_phase())
    train: TrainConfig = field(default_factory=_toy_train)
    sample: ToySample = field(default_factory=ToySample)
    evaluate: ToyEvaluate = field(default_factory=ToyEvaluate)
    # torch.set_num_threads while this run trains; 0 = leave as is (not part of the results)
    threads: Annotated[int, Range(0, MAX_THREADS)] = 1

    def __post_init__(self) -> None:
        check_run_fields(self)
        if self.train.steps < 1:  # TrainConfig allows 0 (EDM derives it); here 0 would train nothing
            raise ConfigError("train.steps", "need an int >= 1 (a toy run trains from scratch)", self.train.steps,
                              5000)
        if self.sample.sample_steps > self.diffusion.T:
            raise ConfigError("sample.sample_steps", f"need at most diffusion.T={self.diffusion.T} (0 = all T)",
                              self.sample.sample_steps, 0)
        self.unet_config()  # validates the architecture against the image size

    def unet_config(self) -> UNetConfig:
        m = self.model
        return UNetConfig(resolution=self.data.size, base_channels=m.base_channels, channel_mult=m.channel_mult,
                          num_res_blocks=m.num_res_blocks, fold=m.fold, global_pool=m.global_pool)


def _amp_phase() -> Regularizer:
    # phase_eps pinned to 0.1, the library default when the committed toy and power-spectra results were made
    # (docs/toy.md); the library's default is now 0.01 (docs/spectral.md), which these runs have not been redone with.
    return Regularizer("amp_phase", 1.0, "alpha_bar", {"phase_eps": 0.1})


# The variants a sweep may name (``--regularizer baseline,amp_phase``): each is its L_S only (kind, options);
# lambda_spec and weighting come from the profile's regularizer (lambda_spec 1, alpha_bar), or from --set or axes
# of their own (``--lambda_spec 0.3,1``), which skip the baseline.
TOY_VARIANTS: dict[str, Variant | None] = {
    "baseline": None,
    "amp": Variant("amp"),  # Eq. 14
    "amp_phase": Variant("amp_phase", _amp_phase().options),  # Eq. 15, phase_eps as the default regularizer's
    "haar": Variant("wavelet", {"wave": "haar", "levels": 2}),  # Eq. 16
    "bior1.3": Variant("wavelet", {"wave": "bior1.3", "levels": 2}),  # Eq. 16
}

TOY_GLOSSARY: dict[str, tuple[str, str]] = {
    "log_distance": ("spectral log distance between the samples' and the ground truth's radially averaged "
                     "power spectra (floored), decades", "lower"),
    "over_baseline_log_distance": ("log distance of the regularized model / that of the baseline, same seeds",
                                   "lower"),
    "valid_fraction": ("share of samples whose sign pattern is a member of the checkerboard family", "higher"),
    "binariness": ("share of pixels within 0.1 of -1 or +1 (ground truth 1)", "higher"),
    "peak_energy_ratio": ("power on the family's peak frequencies relative to the ground truth", "neither"),
    "in_band_fraction": ("share of non-DC power on the family's peak frequencies (1 - spectral leakage)",
                         "higher"),
    "hf_energy_ratio": ("power above 0.25 cycles/pixel relative to the data (1 = right amount)", "neither"),
    "slope": ("fitted power-law exponent of the radially averaged spectrum (data: about -2)", "neither"),
    "seconds_per_step": ("median wall time of one optimiser step on this machine", "lower"),
}


class ToyExperiment(Experiment):
    """DDPM U-Net + eps-MSE (+ lambda_spec * w * L_S(x0_hat, x0)); ancestral/DDIM sampling; spectra + structure."""

    config_class = ToyConfig
    variants = TOY_VARIANTS
    glossary = TOY_GLOSSARY
    shorthands = {
        "steps": Shorthand("train.steps", "optimiser steps (default: the profile's)"),
        "weighting": Shorthand("regularizer.weighting", "the time weighting w of lambda_spec * w * L_S, "
                               "comma-separated: alpha_bar (default), unweighted, min_snr, ...", axis=True),
    }

    def __init__(self, name: str, base: dict[str, Any], profiles: dict[str, dict[str, Any]],
                 default_seeds: dict[str, tuple[int, ...]], default_variants: tuple[str, ...]) -> None:
        self.name, self.base, self.profiles = name, base, profiles
        self.default_seeds, self.default_variants = default_seeds, default_variants

    def build_model(self, cfg: ToyConfig) -> nn.Module:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        return UNet(cfg.unet_config())

    def model_meta(self, cfg: ToyConfig) -> dict[str, Any]:
        from dataclasses import asdict

        return {"unet": asdict(cfg.unet_config())}

    def build_data(self, cfg: ToyConfig) -> CheckerboardFamily | ImagePatches:
        return cfg.data.build()

    def build_loss(self, cfg: ToyConfig) -> DDPMLoss:
        """The eps-MSE of Eq. 3, plus lambda_spec * w(t) * L_S(x0_hat, x0) when a regularizer is set (Eq. 17)."""
        return DDPMLoss(cfg.diffusion.build(), parametrization=cfg.diffusion.parametrization,
                        regularizer=cfg.regularizer)

    @torch.no_grad()
    def sample(self, cfg: ToyConfig, model: nn.Module) -> torch.Tensor:
        """``n_samples`` samples, (N, 1, size, size) on the CPU; latents depend on the seed only."""
        device = next(model.parameters()).device
        g = torch.Generator(device=device).manual_seed(LATENT_SEED + self.seed(cfg))
        s, size = cfg.sample, cfg.data.size
        latents = torch.randn(s.n_samples, 1, size, size, generator=g, device=device)
        kw = dict(clip_x0=s.clip_x0 or None, generator=g, parametrization=cfg.diffusion.parametrization)
        sched = cfg.diffusion.build()
        model.eval()
        if s.sampler == "ddim":
            ts = ddim_timesteps(cfg.diffusion.T, s.sample_steps or cfg.diffusion.T)
            return ddim_sample(model, latents, sched, timesteps=ts, **kw).cpu()
        return ancestral_sample(model, latents, sched, **kw).cpu()

    def evaluate(self, cfg: ToyConfig, samples: torch.Tensor) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        ref = reference(cfg)
        _, p_ref = floored_spectrum(ref, cfg.evaluate.log_floor)
        freqs, p = floored_spectrum(samples, cfg.evaluate.log_floor)
        metrics: dict[str, Any] = {"log_distance": spectral_log_distance(p, p_ref)}
        if cfg.data.dataset == "checkerboard":
            metrics.update(structure_metrics(samples, cfg.data.build(), reference=ref))
        return metrics, {"freqs": freqs, "power": p}


def reference(cfg: ToyConfig) -> torch.Tensor:
    """Ground-truth images (n_reference, 1, size, size) from a fixed seed, apart from every training seed."""
    return cfg.data.build()(cfg.evaluate.n_reference, torch.Generator().manual_seed(REFERENCE_SEED))


# Profiles: dotted overrides of the dataclass defaults (the checkerboard cpu settings).
_SMOKE = {"model.base_channels": 16, "diffusion.T": 20, "train.steps": 30, "train.warmup_steps": 5,
          "train.ema_decay": 0.9, "train.checkpoint_every": 0, "train.progress": False,
          "sample.n_samples": 8, "evaluate.n_reference": 64}
CHECKERBOARD = ToyExperiment("checkerboard", base={}, profiles={
    # the pipeline end to end in seconds: a tiny net, a few steps, a short schedule (shows no effect)
    "smoke": _SMOKE,
    # the paper's 64x64 on a 2-core CPU (the defaults); seed 0 is for tuning, 1-3 for evaluation
    "cpu": {},
    "paper": {"model.channel_mult": (1, 2), "model.num_res_blocks": 2, "train.steps": 20000,
              "train.warmup_steps": 500, "train.device": "auto", "sample.n_samples": 256, "threads": 0},
}, default_seeds={"smoke": (1,), "cpu": (1, 2, 3), "paper": (1, 2, 3, 4, 5)},
   default_variants=("baseline", "amp_phase"))
POWER_SPECTRA = ToyExperiment("power_spectra", base={
    "data.dataset": "patches", "data.size": 32, "data.patch_scale": 2, "model.fold": 2,
    "model.global_pool": False, "model.channel_mult": (1, 2), "diffusion.schedule": "cosine", "train.lr": 5e-4,
}, profiles={
    "smoke": {**_SMOKE, "train.steps": 20},
    # 2000 steps: ~0.25 s/step for this net on one core of the 2-core CPU, 5 variants in ~1 h on two workers
    "cpu": {"model.base_channels": 64, "train.steps": 2000, "sample.n_samples": 128},
    "paper": {"data.size": 64, "train.steps": 50000, "train.warmup_steps": 1000, "train.device": "auto",
              "sample.n_samples": 512, "threads": 0},
}, default_seeds={"smoke": (1,), "cpu": (1,), "paper": (1, 2, 3)},
   default_variants=("baseline", "amp", "amp_phase", "haar", "bior1.3"))
