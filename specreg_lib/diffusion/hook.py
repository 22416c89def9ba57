"""The spectral hook shared by every diffusion loss: L = L_diff + lambda_spec * w * L_S(x0_hat, x0) (Eq. 17).

This is the only place the spectral term is added, for DDPM/DDIM and for EDM (VP/VE/EDM) alike.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from .weighting import SpectralWeighting, as_weighting


@runtime_checkable
class SpectralFn(Protocol):
    """Any picklable callable ``spectral(x0_hat, x0) -> (B,)``, e.g. ``specreg_lib.spectral.SpectralLoss``."""

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor) -> torch.Tensor: ...


def per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over all non-batch dims: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


class SpectralHookLoss:
    """Base of the diffusion losses: holds the hook options and adds the spectral term (Eq. 17)."""

    def __init__(self, spectral: SpectralFn | None, lambda_spec: float, weighting: str | SpectralWeighting,
                 **weighting_options: Any) -> None:
        if spectral is not None and not callable(spectral):
            raise TypeError(f"spectral must be a callable (x0_hat, x0) -> (B,) or None, got {type(spectral)}")
        lambda_spec = float(lambda_spec)
        if not lambda_spec >= 0:  # also rejects NaN
            raise ValueError(f"lambda_spec must be >= 0, got {lambda_spec}")
        self.spectral = spectral
        self.lambda_spec = lambda_spec
        self.weighting = as_weighting(weighting, **weighting_options)

    @property
    def regularized(self) -> bool:
        """Whether the spectral term is on (``spectral`` given and ``lambda_spec > 0``)."""
        return self.spectral is not None and self.lambda_spec > 0

    def _add_spectral(self, l_diff: torch.Tensor, x0_hat: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor,
                      lam: torch.Tensor, t: torch.Tensor | None, return_parts: bool
                      ) -> torch.Tensor | dict[str, torch.Tensor]:
        """l_diff (B,) + lambda_spec * w * L_S(x0_hat, x0); gradients reach the net via x0_hat only."""
        if not self.regularized:
            loss, l_spec, w = l_diff, torch.zeros_like(l_diff), torch.zeros_like(l_diff)
        else:
            w = self.weighting(sigma.detach(), lam.detach(), t).to(l_diff.dtype)  # (B,)
            l_spec = self.spectral(x0_hat, x0.detach())
            if l_spec.shape != l_diff.shape:
                raise ValueError(f"spectral loss must return per-sample values {tuple(l_diff.shape)}, "
                                 f"got {tuple(l_spec.shape)}")
            loss = l_diff + self.lambda_spec * w * l_spec.to(l_diff.dtype)  # Eq. 17
        if not return_parts:
            return loss
        parts = {"loss": loss, "diffusion": l_diff, "spectral": l_spec, "weight": w, "sigma": sigma.detach()}
        if t is not None:
            parts["t"] = t
        return parts

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"
