"""Drop-in: the spectral term of Eq. 17 for a training loop you already have.

    loss = your_per_sample_loss + reg(x0_hat, x0, t=t, schedule=schedule)    # DDPM family
    loss = your_per_sample_loss + reg(x0_hat, x0, sigma=sigma)               # EDM / k-diffusion style

``reg`` is a :class:`~specreg_lib.diffusion.Regularizer`; ``reg(...)`` is :func:`spectral_term`, which returns
``lambda_spec * w * L_S(x0_hat, x0)`` per sample (B,) by the same computation (``hook.weighted_spectral_term``)
as ``DDPMLoss`` / ``EDMLoss`` use internally, so for the same x0_hat, x0 and noise level it adds exactly what
they add (tested bit for bit). Nothing here synchronises with the host.
"""

from __future__ import annotations

import torch

from .ddpm import ddpm_noise_level
from .edm import lambda_edm
from .hook import Regularizer, weighted_spectral_term
from .schedules import DDPMSchedule
from .weighting import SpectralWeighting, as_weighting

DEFAULT_WEIGHTING = {"t": "alpha_bar", "sigma": "weighted"}  # DDPMLoss's and EDMLoss's defaults


def _per_sample_sigma(sigma: torch.Tensor | float, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """sigma as a scalar, (B,) or (B, 1, ..., 1) -> (B,) on like's device (shape checks only: no sync)."""
    B = like.shape[0]
    s = torch.as_tensor(sigma, device=like.device).to(dtype)
    if s.numel() == 1:
        return s.reshape(1).expand(B)
    if s.numel() != B or s.shape[0] != B or any(n != 1 for n in s.shape[1:]):
        raise ValueError(f"sigma of shape {tuple(s.shape)} is not one noise level per sample for x0 of shape "
                         f"{tuple(like.shape)}; pass a scalar, ({B},) or ({B}, 1, ..., 1)")
    return s.reshape(B)


def _noise_level(x0: torch.Tensor, dtype: torch.dtype, t: torch.Tensor | None, schedule: DDPMSchedule | None,
                 sigma: torch.Tensor | float | None, lam: torch.Tensor | None, sigma_data: float, norm: str
                 ) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(form, sigma (B,), lam (B,), t or None) from either noise-level form."""
    if (t is None) == (sigma is None):
        raise ValueError("give the noise level once: t=(B,) step indices with schedule=DDPMSchedule(...), "
                         "or sigma=(B,) / (B, 1, 1, 1) noise levels")
    if t is not None:
        if not isinstance(schedule, DDPMSchedule):
            raise TypeError("t needs schedule=DDPMSchedule(...), e.g. DDPMSchedule.from_diffusers(scheduler) or "
                            f"DDPMSchedule.from_alphas_cumprod(alphas_cumprod); got {type(schedule).__name__}")
        t = torch.as_tensor(t, device=x0.device)
        if t.shape != (x0.shape[0],):
            raise ValueError(f"t must have shape ({x0.shape[0]},) (one step per sample), got {tuple(t.shape)}")
        s, own = ddpm_noise_level(schedule, t, x0.new_empty(0, dtype=dtype), norm)
        form = "t"
    else:
        if schedule is not None:
            raise ValueError("schedule only goes with t; with sigma give no schedule")
        s, form = _per_sample_sigma(sigma, x0, dtype), "sigma"
        own = lambda_edm(s, sigma_data)  # the EDM loss's own weight; pass lam= for VP / VE (1 / sigma^2)
    if lam is not None:
        own = _per_sample_sigma(lam, x0, dtype)  # same shape rules as sigma
    return form, s, own, t


def _weighting(reg: Regularizer | SpectralWeighting | str | None, form: str) -> SpectralWeighting:
    if isinstance(reg, Regularizer):
        return reg.resolved_weighting(DEFAULT_WEIGHTING[form])
    return as_weighting(DEFAULT_WEIGHTING[form] if reg is None else reg)


def _dtype(x0: torch.Tensor) -> torch.dtype:
    """The term's dtype: x0's if float32/float64, else float32 (half-precision data; the losses run in float32)."""
    return x0.dtype if x0.dtype in (torch.float32, torch.float64) else torch.float32


def time_weight(weighting: Regularizer | SpectralWeighting | str | None, *, like: torch.Tensor,
                t: torch.Tensor | None = None, schedule: DDPMSchedule | None = None,
                sigma: torch.Tensor | float | None = None, lam: torch.Tensor | None = None,
                sigma_data: float = 0.5, norm: str = "l2") -> torch.Tensor:
    """The spectral term's time weight w (B,) at DDPM steps ``t`` (with ``schedule``) or noise levels ``sigma``.

    ``weighting``: a Regularizer (its weighting, or the default for the form), a kind name or a
    ``SpectralWeighting``; None = the default ("alpha_bar" with t, "weighted" with sigma). ``like``: a (B, ...)
    tensor giving batch size, device and dtype. Other keywords as :func:`spectral_term`.
    """
    dtype = _dtype(like)
    form, s, own, t = _noise_level(like, dtype, t, schedule, sigma, lam, sigma_data, norm)
    w = _weighting(weighting, form)(s, own, t).to(dtype)
    return torch.where(torch.isinf(s), torch.zeros_like(w), w)  # alpha_bar = 0: excluded, as in the losses


def spectral_term(reg: Regularizer, x0_hat: torch.Tensor, x0: torch.Tensor, *, t: torch.Tensor | None = None,
                  schedule: DDPMSchedule | None = None, sigma: torch.Tensor | float | None = None,
                  lam: torch.Tensor | None = None, sigma_data: float = 0.5, norm: str = "l2",
                  return_parts: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
    """``lambda_spec * w * L_S(x0_hat, x0)`` per sample (B,), to add to your own per-sample diffusion loss.

    x0_hat, x0: (B, C, *S), x0_hat carrying the graph (from ``predict_eps_x0`` for eps / v / x0 outputs, or your
    denoiser's D(x; sigma)). The noise level, one of:
      - ``t`` (B,) integer steps with ``schedule`` (a ``DDPMSchedule``, e.g. ``from_diffusers(scheduler)``):
        sigma_t = sqrt((1 - abar_t) / abar_t); the default weighting is "alpha_bar" (as ``DDPMLoss``);
      - ``sigma``: a scalar, (B,) or (B, 1, ..., 1) (the same loss); the default weighting is "weighted"
        (lambda_EDM with ``sigma_data``, as ``EDMLoss``).
    ``lam`` overrides your loss's own x0-space weight, used only by weighting="weighted" (default: SNR(t) for
    an L2 eps loss, sqrt(SNR(t)) with ``norm="l1"``, lambda_EDM(sigma); VP / VE losses: ``lam=1 / sigma**2``).
    Samples at alpha_bar_t = 0 (zero terminal SNR) get w = 0. With ``lambda_spec = 0`` the result is zeros
    and L_S is not evaluated. ``return_parts=True``: a dict with 'term', 'spectral', 'weight', 'sigma'.
    """
    if not isinstance(reg, Regularizer):
        raise TypeError(f"reg must be a Regularizer, e.g. Regularizer('amp', lambda_spec=0.1); "
                        f"got {type(reg).__name__}")
    dtype = _dtype(x0)
    form, s, own, t = _noise_level(x0, dtype, t, schedule, sigma, lam, sigma_data, norm)
    if reg.lambda_spec > 0:
        term, l_spec, w = weighted_spectral_term(reg.spectral_loss(), reg.lambda_spec, _weighting(reg, form),
                                                 x0_hat, x0, s, own, t, dtype)
    else:
        term = l_spec = w = torch.zeros(x0.shape[0], device=x0.device, dtype=dtype)
    return {"term": term, "spectral": l_spec, "weight": w, "sigma": s} if return_parts else term
