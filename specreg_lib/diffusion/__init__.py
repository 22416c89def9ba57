"""Diffusion formulations and samplers with the spectral hook: DDPM / DDIM (``ddpm``) and EDM VP / VE / EDM
(``edm``), beta schedules (``schedules``), the spectral term's time weighting (``weighting``) and the single
place the spectral term is added (``hook``).
"""

from .ddpm import DDPMLoss, ancestral_sample, ddim_sample, ddim_timesteps, predict_eps_x0, q_sample
from .edm import (
    EDMLoss,
    Precond,
    VELoss,
    VPLoss,
    euler_sample,
    heun_sample,
    preconditioning,
    sampler_sigmas,
    sigma_steps,
)
from .hook import Regularizer, SpectralFn
from .schedules import DIFFWAVE_FAST_BETAS, DDPMSchedule, align_steps, beta_schedule
from .weighting import WEIGHTING_KINDS, SpectralWeighting, spectral_weight

__all__ = [
    "DDPMLoss", "ancestral_sample", "ddim_sample", "ddim_timesteps", "predict_eps_x0", "q_sample",
    "EDMLoss", "Precond", "VELoss", "VPLoss", "euler_sample", "heun_sample", "preconditioning",
    "sampler_sigmas", "sigma_steps", "Regularizer", "SpectralFn", "DIFFWAVE_FAST_BETAS", "DDPMSchedule", "align_steps",
    "beta_schedule", "WEIGHTING_KINDS", "SpectralWeighting", "spectral_weight",
]
