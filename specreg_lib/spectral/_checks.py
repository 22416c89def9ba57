"""Input validation shared by the spectral losses: one place for every 'clear error' the losses promise."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

FFT_NORMS = ("backward", "ortho", "forward")
BINS = ("mean", "sum")  # how a loss reduces over frequency bins / wavelet coefficients (and channels)


_F = TypeVar("_F", bound=Callable[..., torch.Tensor])


def full_precision(loss: _F) -> _F:
    """Run a loss with autocast off on its input's device, so it computes and returns float32 (or float64).

    Why: under fp16/bf16 autocast torch runs matmuls/convolutions in half precision; a spectral sum over a
    64x64 image (or any ``norm="backward"`` spectrum) passes fp16's 65504 and becomes inf, and bf16 keeps 8 bits
    of mantissa. The inputs are upcast by :func:`check_pair`; gradients flow back into the half-precision
    network unchanged (autocast only picks kernels, it is not part of the graph)."""

    @functools.wraps(loss)
    def wrapper(x0_hat: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        device = x0_hat.device.type if isinstance(x0_hat, torch.Tensor) else "cpu"
        if not torch.is_autocast_enabled(device):
            return loss(x0_hat, *args, **kwargs)
        with torch.autocast(device, enabled=False):
            return loss(x0_hat, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def check_ndim(x: torch.Tensor, ndim: int, name: str = "x0_hat") -> None:
    """Require ``x`` shaped (B, C, *spatial) with ``ndim`` spatial axes (extra middle axes count as channels)."""
    if not isinstance(ndim, int) or isinstance(ndim, bool) or ndim < 1:
        raise ValueError(f"ndim must be a positive int, got {ndim!r}")
    if x.dim() < ndim + 2:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}: ndim={ndim} needs at least {ndim + 2} axes "
            f"(B, C, *{ndim} spatial axes); add a channel axis with x.unsqueeze(1) if it is missing"
        )
    if any(s == 0 for s in x.shape):
        raise ValueError(f"{name} has an empty axis: shape {tuple(x.shape)}; check the batch size and crop")


def check_tensor(x: object, name: str, check_finite: bool = True) -> torch.Tensor:
    """Require a real floating-point tensor; NaN/Inf raise ValueError (turn off with ``check_finite=False``)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{name} is complex ({x.dtype}); the spectral losses take real signals: pass x.real")
    if not x.is_floating_point():
        raise TypeError(f"{name} has dtype {x.dtype}; convert it to float first (e.g. x.float() / 127.5 - 1)")
    # One fused reduction per call; NaN/Inf in a loss input always means a bug upstream, so fail loudly
    # instead of propagating NaN into the optimiser state.
    if check_finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf values (pass check_finite=False to skip this check)")
    return x


def check_pair(
    x0_hat: torch.Tensor, x0: torch.Tensor, ndim: int, check_finite: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a (prediction, target) pair and upcast half precision to float32 (float64 stays float64)."""
    check_tensor(x0_hat, "x0_hat", check_finite)
    check_tensor(x0, "x0", check_finite)
    if x0_hat.shape != x0.shape:
        raise ValueError(f"shape mismatch: x0_hat {tuple(x0_hat.shape)} vs x0 {tuple(x0.shape)}; pass a prediction "
                         "and a target of the same shape")
    if x0_hat.device != x0.device:
        raise ValueError(f"device mismatch: x0_hat on {x0_hat.device}, x0 on {x0.device}; move both to one device")
    check_ndim(x0_hat, ndim)
    dtype = torch.float64 if torch.float64 in (x0_hat.dtype, x0.dtype) else torch.float32
    return x0_hat.to(dtype), x0.to(dtype)


def check_norm(norm: str) -> str:
    """Validate an FFT normalisation name (as in ``torch.fft``)."""
    if norm not in FFT_NORMS:
        raise ValueError(f"unknown FFT norm {norm!r}; choose one of {', '.join(FFT_NORMS)}")
    return norm


def check_bins(bins: str) -> str:
    """Validate a spectral reduction: "mean" or "sum" over bins/coefficients (never the EDM pixel-sum word)."""
    if bins not in BINS:
        raise ValueError(f"unknown bins reduction {bins!r}; choose one of {', '.join(BINS)}")
    return bins
