"""Time weighting w of the spectral term in L_diff + lambda_spec * w * L_S(x0_hat, x0) (paper Eq. 17).

Every formulation is described by its noise level sigma (for DDPM sigma_t = sqrt((1 - abar_t)/abar_t), so
x_t / sqrt(abar_t) = x0 + sigma_t * eps) and by lambda(sigma), the weight its own diffusion loss puts on the
x0-space error. The kinds:

- "unweighted": w = 1. The paper's setting for audio (DiffWave, constant lambda) and one of its two image
  settings.
- "weighted": w = lambda(sigma), the formulation's own x0-space weight. For EDM that is lambda_EDM =
  (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2, the paper's "weighted" image setting; for VP/VE
  1/sigma^2; for DDPM's L2 epsilon loss SNR(t) = abar/(1 - abar) (because ||eps - eps_hat||^2 =
  SNR * ||x0 - x0_hat||^2), for its L1 epsilon loss sqrt(SNR(t)).
- "min_snr": w = min(SNR, gamma), SNR = 1/sigma^2 (Min-SNR-gamma, Hang et al. 2023, in x0 space; gamma = 5).
- "alpha_bar": w = abar = 1/(1 + sigma^2). It cancels the 1/sqrt(abar_t) noise amplification of Eq. 5:
  abar * ||x0_hat - x0|| = sqrt(abar (1 - abar)) * ||eps_hat - eps|| <= 0.5 ||eps_hat - eps|| at every t.
- "t_gate": w = 1 where t <= t_max (DDPM step index) and/or sigma <= sigma_gate, else 0.

Defaults: EDM losses use "weighted" (the paper's lambda_EDM). The paper gives no weighting for DDPM beyond
its constant audio lambda, so ``DDPMLoss`` defaults to "alpha_bar": on the checkerboard toy (linear schedule,
where 1/sqrt(abar_999) ~ 160) lambda_spec = 1 "unweighted" gave gradient norms 15-170 against 0.5 for the
baseline and a 3-4x worse eps-MSE, which alpha_bar weighting removed. Reproduce the paper's DiffWave runs
with "unweighted" (its 50-step schedule only amplifies by 1/sqrt(abar) < 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

WEIGHTING_KINDS = ("unweighted", "weighted", "min_snr", "alpha_bar", "t_gate")


def lambda_edm(sigma: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    """lambda_EDM(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Eq. 7; the paper's "weighted")."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


@dataclass(frozen=True)
class SpectralWeighting:
    """Picklable time weighting of the spectral term; see the module docstring for the kinds."""

    kind: str = "weighted"
    gamma: float = 5.0  # min_snr: the SNR cap
    t_max: int | None = None  # t_gate: keep steps t <= t_max (DDPM only)
    sigma_gate: float | None = None  # t_gate: keep noise levels sigma <= sigma_gate

    def __post_init__(self) -> None:
        if self.kind not in WEIGHTING_KINDS:
            raise ValueError(f"unknown weighting {self.kind!r}; choose one of {WEIGHTING_KINDS}")
        # every option finite and in range whatever the kind (it is saved with the config): a NaN gate keeps nothing
        if isinstance(self.gamma, bool) or not isinstance(self.gamma, int | float) or not 0 < self.gamma < math.inf:
            raise ValueError(f"weighting gamma must be a finite number > 0 (min_snr's SNR cap, e.g. 5), "
                             f"got {self.gamma!r}")
        if self.t_max is not None and (isinstance(self.t_max, bool) or not isinstance(self.t_max, int)
                                       or self.t_max < 0):
            raise ValueError(f"weighting t_max must be a DDPM step index (an int >= 0) or None, got {self.t_max!r}")
        if self.sigma_gate is not None and (isinstance(self.sigma_gate, bool)
                                            or not isinstance(self.sigma_gate, int | float)
                                            or not 0 < self.sigma_gate < math.inf):
            raise ValueError(f"weighting sigma_gate must be a finite noise level > 0 or None, got {self.sigma_gate!r}")
        if self.kind == "t_gate" and self.t_max is None and self.sigma_gate is None:
            raise ValueError("t_gate needs t_max (a DDPM step index) or sigma_gate (a noise level)")
        if self.kind != "t_gate" and (self.t_max is not None or self.sigma_gate is not None):
            raise ValueError(f"t_max / sigma_gate only apply to weighting='t_gate', not {self.kind!r}")

    def __call__(self, sigma: torch.Tensor, lam: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """w (B,) from sigma (B,), the loss's own x0-space weight lam (B,) and the DDPM steps t (B,)."""
        if self.kind == "unweighted":
            return torch.ones_like(sigma)
        if self.kind == "weighted":
            return lam
        if self.kind == "min_snr":
            return (1 / sigma**2).clamp(max=self.gamma)
        if self.kind == "alpha_bar":
            return 1 / (1 + sigma**2)
        keep = torch.ones_like(sigma, dtype=torch.bool)  # t_gate
        if self.t_max is not None:
            if t is None:
                raise ValueError("t_gate with t_max needs DDPM step indices; use sigma_gate for EDM")
            keep &= t <= self.t_max
        if self.sigma_gate is not None:
            keep &= sigma <= self.sigma_gate
        return keep.to(sigma.dtype)


def as_weighting(weighting: str | SpectralWeighting, **options: float | int | None) -> SpectralWeighting:
    """Turn a kind name plus options (gamma, t_max, sigma_gate) into a ``SpectralWeighting``."""
    if isinstance(weighting, SpectralWeighting):
        if options:
            raise TypeError("pass weighting options either inside SpectralWeighting or as keywords, not both")
        return weighting
    if not isinstance(weighting, str):
        raise TypeError(f"weighting must be a str or SpectralWeighting, got {type(weighting).__name__}")
    unknown = set(options) - {"gamma", "t_max", "sigma_gate"}
    if unknown:
        raise TypeError(f"unknown weighting options {sorted(unknown)}; valid: gamma, t_max, sigma_gate")
    return SpectralWeighting(weighting, **options)


def spectral_weight(kind: str, sigma: torch.Tensor, lam: torch.Tensor, t: torch.Tensor | None = None,
                    **options: float | int | None) -> torch.Tensor:
    """Functional form of ``SpectralWeighting(kind, **options)(sigma, lam, t)``."""
    return as_weighting(kind, **options)(sigma, lam, t)
