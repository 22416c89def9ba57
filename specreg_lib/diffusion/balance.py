"""Choosing lambda_spec: how big the spectral term and its gradient are next to the diffusion loss's.

Eq. 17's lambda_spec only means something relative to the diffusion loss, whose size depends on the
formulation, the weighting w, the resolution and the network. :func:`term_balance` measures, on one batch, both
terms and the norms of their gradients with respect to the network's parameters, and the lambda_spec that
would make the spectral gradient a chosen fraction (``target_ratio``) of the diffusion gradient.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from .hook import SpectralHookLoss


def _grad_norm(value: torch.Tensor, params: list[torch.Tensor], retain: bool) -> float:
    """||d value / d params||_2 over all parameters (unused ones count as 0)."""
    grads = torch.autograd.grad(value, params, retain_graph=retain, allow_unused=True)
    return math.sqrt(sum(float(g.double().square().sum()) for g in grads if g is not None))


def term_balance(loss: SpectralHookLoss, net: Any, x0: torch.Tensor, cond: Any = None,
                 generator: torch.Generator | None = None, params: Iterable[torch.Tensor] | None = None,
                 target_ratio: float = 0.1) -> dict[str, float]:
    """Batch means of L_diff and w * L_S (lambda_spec left out), their gradient norms, and a lambda_spec.

    ``loss``: a DDPMLoss / EDMLoss / VPLoss / VELoss with a regularizer (lambda_spec > 0; its value is not
    used); ``net`` what that loss calls (model or denoiser); ``params`` default ``net.parameters()``.
    Returns ``diffusion``, ``spectral`` (mean w * L_S), ``grad_diffusion``, ``grad_spectral``, ``grad_ratio``
    (= grad_spectral / grad_diffusion: the ratio at lambda_spec = 1) and ``lambda_spec`` = target_ratio /
    grad_ratio, the weight at which the spectral gradient is ``target_ratio`` times the diffusion gradient.
    Host-synchronising: a diagnostic to run once, not in the training step.
    """
    if not isinstance(loss, SpectralHookLoss) or not loss.regularized:
        raise ValueError("loss must be a diffusion loss with a regularizer and lambda_spec > 0, e.g. "
                         "EDMLoss(regularizer=Regularizer('amp'))")
    if not target_ratio > 0:
        raise ValueError(f"target_ratio must be > 0, got {target_ratio!r}")
    if params is None:
        if not isinstance(net, nn.Module):
            raise TypeError("net is not an nn.Module: pass params= (the tensors to differentiate)")
        params = net.parameters()
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no parameter requires grad")
    parts = loss(net, x0, cond=cond, generator=generator, return_parts=True)
    diffusion = parts["diffusion"].mean()
    spectral = (parts["weight"] * parts["spectral"]).mean()  # w * L_S: the term at lambda_spec = 1
    g_diff = _grad_norm(diffusion, params, retain=True)
    g_spec = _grad_norm(spectral, params, retain=False)
    ratio = g_spec / g_diff if g_diff > 0 else math.inf
    return {"diffusion": float(diffusion.detach()), "spectral": float(spectral.detach()), "grad_diffusion": g_diff,
            "grad_spectral": g_spec, "grad_ratio": ratio,
            "lambda_spec": target_ratio / ratio if ratio > 0 else math.inf}
