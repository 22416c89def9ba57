"""Eq. 15 written literally, without gradient safety: a reference for teaching and tests, never for training.

``amplitude_phase_loss`` (fourier.py) has the same value (with ``wrap_phase=False``, per-frequency coupling)
but a softened phase Jacobian; this version shows why that is needed: d angle(F) / dF = i F / |F|^2 explodes
where the prediction's spectrum is almost zero (an almost-constant x0_hat, what a denoiser outputs at high
noise).
"""

from __future__ import annotations

import torch

from ._checks import check_norm, check_pair


def naive_amplitude_phase_loss(x0_hat: torch.Tensor, x0: torch.Tensor, norm: str = "ortho") -> torch.Tensor:
    """Eq. 15 read naively: mean over channels and 2-D DFT bins of |dA| (1 + |dphi|), dphi = raw angle
    difference from ``torch.angle``; (B, C, H, W) -> (B,). Unsafe gradients: see the module docstring."""
    check_norm(norm)
    x0_hat, x0 = check_pair(x0_hat, x0, 2)
    F_hat, F = torch.fft.fft2(x0_hat, norm=norm), torch.fft.fft2(x0, norm=norm)
    dA = (F_hat.abs() - F.abs()).abs()
    dphi = (F_hat.angle() - F.angle()).abs()
    return (dA * (1 + dphi)).flatten(1).mean(1)  # Eq. 15, per frequency
