"""Diffusion formulations and samplers with the spectral hook: DDPM / DDIM (``ddpm``) and EDM VP / VE / EDM
(``edm``), beta schedules (``schedules``), the spectral term's time weighting (``weighting``) and the single
place the spectral term is computed (``hook``, also the drop-in ``spectral_term`` for a loop you already have);
``balance`` measures it against the diffusion loss to choose lambda_spec.
"""

from .balance import term_balance
from .ddpm import (
    DDPMLoss,
    ancestral_sample,
    ddim_sample,
    ddim_timesteps,
    predict_eps_x0,
    q_sample,
)
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
from .hook import Regularizer, SpectralFn, network_output, spectral_term, time_weight
from .schedules import (
    DIFFWAVE_FAST_BETAS,
    DDPMSchedule,
    align_steps,
    beta_schedule,
    ddpm_noise_level,
    diffusers_parametrization,
)
from .weighting import WEIGHTING_KINDS, SpectralWeighting, lambda_edm, spectral_weight

__all__ = [
    "DDPMLoss", "ancestral_sample", "ddim_sample", "ddim_timesteps", "predict_eps_x0", "q_sample",
    "EDMLoss", "Precond", "VELoss", "VPLoss", "euler_sample", "heun_sample", "preconditioning",
    "sampler_sigmas", "sigma_steps", "Regularizer", "SpectralFn", "DIFFWAVE_FAST_BETAS", "DDPMSchedule", "align_steps",
    "beta_schedule", "WEIGHTING_KINDS", "SpectralWeighting", "spectral_weight",
    "term_balance", "ddpm_noise_level", "spectral_term", "time_weight", "lambda_edm", "network_output",
    "diffusers_parametrization",
]
