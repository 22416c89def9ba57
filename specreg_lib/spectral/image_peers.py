"""Peer losses on x0_hat from the image literature, as spectral kinds beside Eqs. 14-16 (not in the paper).

Why: Table 1 sets Eqs. 14-16 against EDM's loss alone. Trainer projects add other frequency terms on x0_hat,
and a spectral term may help only as "one more L1 term". With these peers in the same loop the image study can
tell "the paper's term helps" from "a frequency term helps" from "an L1 term helps".

* ``"pixel_l1"`` (:func:`pixel_l1_loss`): mean |x0_hat - x0| in pixel space, the control.
* ``"dct_multiscale"`` (:func:`dct_multiscale_loss`): k-diffusion's multiscale DCT loss (``Denoiser(scales=N)``,
  k_diffusion/layers.py ``freq_weight_nd``): an orthonormal 2-D DCT-II of the error, each coefficient's square
  weighted by how many octaves lie above its frequency (clamped at ``scales``), averaged.
* ``"focal_freq"`` (:func:`focal_frequency_loss`): focal frequency loss (Jiang et al., ICCV 2021, Eqs. 2-4; PyPI
  ``focal-frequency-loss`` 0.3.0), re-implemented per sample and tested against the package.
* ``"facl"`` (:func:`facl_loss`): Fourier amplitude and correlation loss (Yan et al., NeurIPS 2024, arXiv
  2410.23159, Sec. 3; official code github.com/argenycw/FACL ``utilspp.py``): FAL + FCL.

Each takes images (B, C, H, W) (extra middle axes count as channels; ``pixel_l1`` any (B, C, *S) with ``ndim``)
and returns per-sample values (B,): float32, or float64 for float64 input, autocast off. ``bins`` is "mean" over
the C x H x W values each loss averages (pixels, DCT coefficients or DFT bins) or "sum" over them, so "sum" =
C H W x "mean" exactly for pixel_l1, dct_multiscale and focal_freq; facl's FCL is a ratio and the same under both.
"""

from __future__ import annotations

import functools
import math

import torch

from ._checks import check_bins, check_pair, full_precision
from .loss import register_kind
from .peers import PeerOptionError, _check_int

# The image peers, in the order the studies and tables list them (each a registered kind below)
IMAGE_PEERS = ("pixel_l1", "dct_multiscale", "focal_freq", "facl")


def _reduce(v: torch.Tensor, bins: str) -> torch.Tensor:
    """(B, ...) -> (B,): mean or sum over everything but the batch."""
    v = v.flatten(1)
    return v.sum(1) if bins == "sum" else v.mean(1)


def _images(x0_hat: torch.Tensor, x0: torch.Tensor, check_finite: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate an image pair, fold extra middle axes into channels: (B, C, ..., H, W) -> 2 x (B, C', H, W)."""
    x0_hat, x0 = check_pair(x0_hat, x0, 2, check_finite)
    B, H, W = x0_hat.shape[0], *x0_hat.shape[-2:]
    return x0_hat.reshape(B, -1, H, W), x0.reshape(B, -1, H, W)


def _spectrum(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal two-sided 2-D DFT over the last two axes; a target that needs no gradient stays out of the graph."""
    with torch.set_grad_enabled(x.requires_grad and torch.is_grad_enabled()):
        return torch.fft.fft2(x, norm="ortho")


def _check_number(value: object, name: str, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high or \
            not math.isfinite(value):
        raise PeerOptionError(f"{name} must be a finite number in [{low}, {high}], got {value!r}")
    return float(value)


# --- the control ---------------------------------------------------------------------------------------------

@register_kind("pixel_l1")
@full_precision
def pixel_l1_loss(x0_hat: torch.Tensor, x0: torch.Tensor, ndim: int = 2, check_finite: bool = True,
                  bins: str = "mean") -> torch.Tensor:
    """red |x0_hat - x0| over the C x prod(S) pixels; (B, C, *S) -> (B,). The control: is an effect only L1's?

    ``ndim`` (2 images, 1 audio) only sets how many trailing axes must exist; the value is the same either way.
    """
    check_bins(bins)
    x0_hat, x0 = check_pair(x0_hat, x0, ndim, check_finite)
    return _reduce((x0_hat - x0).abs(), bins)


# --- k-diffusion's multiscale DCT loss -----------------------------------------------------------------------

@functools.lru_cache(maxsize=16)
def _dct_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Orthonormal DCT-II (n, n): C[k, m] = s_k cos(pi (2m + 1) k / 2n), s_0 = sqrt(1/n), s_k = sqrt(2/n)."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    m = torch.arange(n, dtype=torch.float64)[None, :]
    C = torch.cos(math.pi * (2 * m + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    C[0] /= math.sqrt(2.0)
    return C.to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=16)
def dct_frequency_weights(height: int, width: int, scales: int = 0, dtype: torch.dtype = torch.float32,
                          device: torch.device | str = "cpu") -> torch.Tensor:
    """k-diffusion's ``freq_weight_nd``: w[i, j] = min(w_H(i), w_W(j)) with w_n(k) = log2(2n / (k + 1)); (H, W).

    (k + 1) / 2n is DCT bin k's frequency in cycles per sample, shifted one bin so DC is finite, so w_n(k) counts
    the octaves between it and the lowest frequency (1 at Nyquist, log2 2n at DC): roughly the number of the dyadic
    scales n, n/2, n/4, ... at which bin k is still resolved. ``scales >= 1`` clamps it at ``scales`` (1: all
    weights 1, plain MSE); 0 leaves it unclamped, as k-diffusion does.
    """
    def axis(n: int) -> torch.Tensor:
        w = torch.log2(2.0 * n / torch.arange(1, n + 1, dtype=torch.float64))
        return w.clamp_max(scales) if scales >= 1 else w

    return torch.minimum(axis(height)[:, None], axis(width)[None, :]).to(dtype=dtype, device=device)


@register_kind("dct_multiscale")
@full_precision
def dct_multiscale_loss(x0_hat: torch.Tensor, x0: torch.Tensor, scales: int = 0, check_finite: bool = True,
                        bins: str = "mean") -> torch.Tensor:
    """k-diffusion's multiscale DCT loss: red w[h, w] (DCT2(x0_hat - x0)[c, h, w])^2; (B, C, H, W) -> (B,).

    DCT2 is the orthonormal 2-D DCT-II (dctorch's ``dct2``, which k-diffusion calls), w is
    :func:`dct_frequency_weights`; red = ``bins`` over the C x H x W coefficients. k-diffusion applies it to the
    error of the network's F-target, (D - x0) / c_out; on x0_hat that 1 / c_out^2 is the time weighting's job.
    With ``scales=1`` it is the pixel MSE (Parseval); larger ``scales`` weigh low frequencies up.
    """
    check_bins(bins)
    _check_int(scales, "dct_multiscale: scales", low=0)
    x0_hat, x0 = _images(x0_hat, x0, check_finite)
    H, W = x0_hat.shape[-2:]
    C_H, C_W = _dct_matrix(H, x0_hat.dtype, x0_hat.device), _dct_matrix(W, x0_hat.dtype, x0_hat.device)
    D = C_H @ (x0_hat - x0) @ C_W.T  # the DCT is linear: one transform of the error, (B, C, H, W)
    w = dct_frequency_weights(H, W, scales, x0_hat.dtype, x0_hat.device)
    return _reduce(w * D.square(), bins)


# --- focal frequency loss -------------------------------------------------------------------------------------

def _patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """Cut each image into p x p patches: (B, C, H, W) -> (B, p, p, C, H/p, W/p)."""
    B, C, H, W = x.shape
    return x.reshape(B, C, p, H // p, p, W // p).permute(0, 2, 4, 1, 3, 5)


@register_kind("focal_freq")
@full_precision
def focal_frequency_loss(x0_hat: torch.Tensor, x0: torch.Tensor, alpha: float = 1.0, patch_factor: int = 1,
                         log_matrix: bool = False, check_finite: bool = True, bins: str = "mean") -> torch.Tensor:
    """Focal frequency loss (Jiang et al. 2021, Eqs. 2-4): red w |F x0_hat - F x0|^2; (B, C, H, W) -> (B,).

    F: orthonormal 2-D DFT of each of the patch_factor^2 patches; spectrum weight w = |F x0_hat - F x0|^alpha
    (ln(1 + .) of it if ``log_matrix``) divided by its maximum over each patch and channel's bins, in [0, 1], and a
    constant for the gradient (the paper: no gradient through the weight; 0 where the maximum is 0). red = ``bins``
    over the C x H x W bins: "mean" is the package's ``FocalFrequencyLoss(alpha, patch_factor, log_matrix)`` on
    one sample. Its batch-coupled options (``ave_spectrum``, ``batch_matrix``) are not offered; ``loss_weight`` is
    lambda_spec.
    """
    check_bins(bins)
    alpha = _check_number(alpha, "focal_freq: alpha")
    p = _check_int(patch_factor, "focal_freq: patch_factor")
    if not isinstance(log_matrix, bool):
        raise PeerOptionError(f"focal_freq: log_matrix must be True or False, got {log_matrix!r}")
    x0_hat, x0 = _images(x0_hat, x0, check_finite)
    H, W = x0_hat.shape[-2:]
    if H % p or W % p:
        raise PeerOptionError(f"focal_freq: patch_factor {p} must divide the image size {H}x{W}; pass a divisor")
    dF = torch.fft.fft2(_patches(x0_hat, p), norm="ortho") - _spectrum(_patches(x0, p))
    d2 = dF.real.square() + dF.imag.square()  # Eq. 2: squared frequency distance, (B, p, p, C, h, w)
    with torch.no_grad():  # Eq. 3: the spectrum weight matrix, a constant for the gradient
        w = d2.sqrt().pow(alpha)
        if log_matrix:
            w = torch.log1p(w)
        peak = w.amax(dim=(-2, -1), keepdim=True)
        w = torch.where(peak > 0, w / peak.where(peak > 0, 1.0), 0.0).clamp(0.0, 1.0)
    return _reduce(w * d2, bins)  # Eq. 4


# --- Fourier amplitude and correlation loss -------------------------------------------------------------------

@register_kind("facl")
@full_precision
def facl_loss(x0_hat: torch.Tensor, x0: torch.Tensor, p_fal: float = 0.5, check_finite: bool = True,
              bins: str = "mean") -> torch.Tensor:
    """FACL (Yan et al. 2024): p_fal FAL + (1 - p_fal) FCL per sample; (B, C, H, W) -> (B,).

    FAL = red (|F x0_hat| - |F x0|)^2 over the C x H x W bins of the orthonormal 2-D DFT F (red = ``bins``).
    FCL = 1 - Re sum F x0_hat conj(F x0) / sqrt(sum |F x0_hat|^2 sum |F x0|^2) over the sample's bins, in [0, 2];
    1 (no correlation, zero gradient) where either image is all zeros. The paper picks FAL or FCL at random each
    step with a probability that grows over training; a stateless kind returns the expectation at probability
    ``p_fal``. Its code scales both by sqrt(H W); here that factor is part of lambda_spec.
    """
    check_bins(bins)
    p_fal = _check_number(p_fal, "facl: p_fal", 0.0, 1.0)
    x0_hat, x0 = _images(x0_hat, x0, check_finite)
    F_hat, F = torch.fft.fft2(x0_hat, norm="ortho"), _spectrum(x0)
    fal = _reduce((F_hat.abs() - F.abs()).square(), bins)  # FAL: torch.abs has subgradient 0 at a complex 0
    # FCL through Parseval (orthonormal F): Re <F a, F b> = <a, b> and ||F a|| = ||a||, so it is 1 - the pixels'
    # cosine similarity; computed in pixels, tested against the DFT form.
    dot = (x0_hat * x0).flatten(1).sum(1)
    ss_hat, ss = x0_hat.square().flatten(1).sum(1), x0.square().flatten(1).sum(1)
    ok = (ss_hat > 0) & (ss > 0)
    fcl = 1.0 - torch.where(ok, dot / (ss_hat * ss).where(ok, 1.0).sqrt(), 0.0)
    return p_fal * fal + (1.0 - p_fal) * fcl
