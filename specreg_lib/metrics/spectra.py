"""Spectral diagnostics: radially averaged power spectra and the distances the paper's spectrum plots show.

Conventions (the paper shows power-spectrum curves but gives no numbers or conventions, paper.md 7):
* images (B, C, H, W): P(k) = |fft2 x|^2 / (H W), averaged over channels; frequencies in cycles/pixel
  f = sqrt(fy^2 + fx^2); bin i collects f in [(i - 1/2)/n, (i + 1/2)/n), n = min(H, W), for i = 0..n//2
  (the corners beyond Nyquist are left out); a bin's value is the mean power over its pixels.
* audio (B, C, T): the one-sided periodogram |rfft x|^2 / T, averaged over channels, at f = k/T
  cycles/sample; :func:`welch_power_spectrum` averages Hann-windowed segments instead (``specreg spectrum``).
  With these scalings white noise of variance s^2 has a flat spectrum at s^2.
* ``window="hann"`` tapers crops of larger pictures (``specreg spectrum`` uses it for images; docs/reliability.md
  has the measurement); the toy's periodic checkerboards use no window.
"""

from __future__ import annotations

import numpy as np
import torch

from ..spectral._checks import check_tensor

WINDOWS = (None, "hann")


def _hann_2d(H: int, W: int, like: torch.Tensor) -> torch.Tensor:
    """Separable symmetric Hann taper (H, W), scaled to mean square 1 so white noise keeps its level."""
    w = torch.outer(torch.hann_window(H, periodic=False, dtype=like.dtype, device=like.device),
                    torch.hann_window(W, periodic=False, dtype=like.dtype, device=like.device))
    return w / w.square().mean().sqrt()


def radial_power_spectrum(x: torch.Tensor, kind: str | None = None,
                          window: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power per sample: images (B, C, H, W) or audio (B, C, T) -> ((n,), (B, n)).

    ``kind``: "image" or "audio"; needed for 3 axes, which are either (B, C, T) audio or one (C, H, W) image.
    ``window``: None (periodic signals such as the toy's checkerboards) or "hann" (crops of larger
    pictures: without a taper the wrap-around edge adds a ~f^-2 floor that hides missing high frequencies).
    """
    check_tensor(x, "x")
    if kind not in (None, "image", "audio"):
        raise ValueError(f"kind must be 'image', 'audio' or None, got {kind!r}")
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if x.dim() == 3 and kind is None:
        raise ValueError(f"x has shape {tuple(x.shape)}: 3 axes are (B, C, T) audio or one (C, H, W) image; pass "
                         "kind='audio' or kind='image'")
    if x.dim() == 3 and kind == "image":
        x = x.unsqueeze(0)
    if x.dim() == 3:  # audio: (B, C, T) -> (B, T//2+1)
        T = x.shape[-1]
        if window == "hann":
            w = torch.hann_window(T, periodic=False, dtype=x.dtype, device=x.device)
            x = (x - x.mean(-1, keepdim=True)) * (w / w.square().mean().sqrt())
        power = torch.fft.rfft(x).abs().square().mean(1) / T
        return torch.fft.rfftfreq(T, dtype=x.dtype, device=x.device), power
    if x.dim() != 4 or kind == "audio":
        raise ValueError(f"radial_power_spectrum takes (B, C, H, W) images or (B, C, T) audio, got {tuple(x.shape)}"
                         f" with kind={kind!r}")
    H, W = x.shape[-2:]
    if min(H, W) < 2:
        raise ValueError(f"images of {H}x{W} pixels have no frequency above 0; need at least 2x2")
    if window == "hann":  # remove the mean first: a tapered constant would leak into the low frequencies
        x = (x - x.mean((-2, -1), keepdim=True)) * _hann_2d(H, W, x)
    n = min(H, W)
    power2d = torch.fft.fft2(x).abs().square().mean(1).flatten(1) / (H * W)  # (B, H*W)
    fy = torch.fft.fftfreq(H, dtype=x.dtype, device=x.device)
    fx = torch.fft.fftfreq(W, dtype=x.dtype, device=x.device)
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2).flatten()  # (H*W,) cycles/pixel
    idx = torch.floor(radius * n + 0.5).long()
    keep = idx <= n // 2
    idx = idx[keep]
    n_bins = n // 2 + 1
    counts = torch.bincount(idx, minlength=n_bins).to(x.dtype)
    total = power2d.new_zeros(x.shape[0], n_bins).index_add_(1, idx, power2d[:, keep])
    freqs = torch.arange(n_bins, dtype=x.dtype, device=x.device) / n
    return freqs, total / counts


def welch_power_spectrum(x: np.ndarray | torch.Tensor, nperseg: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Welch-averaged one-sided power of a mono clip (T,) (scipy.signal.welch, Hann, 50% overlap), power per bin.

    -> (freqs in cycles/sample (nperseg//2+1,), power (nperseg//2+1,)), scaled like the periodogram above (white
    noise of variance s^2 is flat at s^2), so clips of any length >= nperseg average onto the same bins.
    """
    from scipy.signal import welch

    x = torch.as_tensor(x).detach().cpu().double().numpy().reshape(-1)
    if x.size < nperseg:
        raise ValueError(f"the clip has {x.size} samples, fewer than one Welch segment (nperseg={nperseg}); "
                         "use longer clips or a smaller nperseg")
    f, pxx = welch(x, fs=1.0, window="hann", nperseg=nperseg, scaling="density", average="mean")
    interior = (f > 0) & (f < 0.5)
    pxx[interior] /= 2  # scipy's one-sided density doubles the interior bins; undo it to match the periodogram
    return f, pxx


def _batch_mean(p: torch.Tensor | np.ndarray) -> np.ndarray:
    """(n,) or (B, n) spectrum -> (n,) float64 numpy, averaged over the batch."""
    p = torch.as_tensor(p).detach().cpu().double().numpy()
    return p.mean(0) if p.ndim == 2 else p


def spectral_log_distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, skip_dc: bool = True) -> float:
    """Mean over frequency bins of |log10(P_a / P_b)| (0 = same spectrum, 1 = a factor 10 everywhere)."""
    pa, pb = _batch_mean(a), _batch_mean(b)
    if pa.shape != pb.shape:
        raise ValueError(f"spectra differ in length: {pa.shape} vs {pb.shape}; use images or clips "
                         "of one size for both (crop them alike)")
    tiny = np.finfo(np.float64).tiny
    d = np.abs(np.log10(np.maximum(pa, tiny)) - np.log10(np.maximum(pb, tiny)))
    return float(d[1:].mean() if skip_dc else d.mean())


def high_frequency_energy_ratio(
    freqs: torch.Tensor | np.ndarray, a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray,
    cutoff: float = 0.25,
) -> float:
    """Mean power of a over bins with f >= cutoff (cycles/sample) divided by that of b (1 = matched)."""
    f = _batch_mean(freqs)
    band = f >= cutoff
    if not band.any():
        raise ValueError(f"no frequency bin at or above cutoff={cutoff} (max {f.max():.3g}); "
                         f"use a cutoff <= {f.max():.3g}")
    return float(_batch_mean(a)[band].mean() / max(_batch_mean(b)[band].mean(), np.finfo(np.float64).tiny))


def fit_power_law_slope(
    freqs: torch.Tensor | np.ndarray, power: torch.Tensor | np.ndarray,
    fmin: float | None = None, fmax: float | None = None,
) -> float:
    """Least-squares slope of log10 P against log10 f over f > 0 in [fmin, fmax]: P ~ f^slope."""
    f, p = _batch_mean(freqs), _batch_mean(power)
    use = (f > 0) & (p > 0) & (f >= (fmin or 0)) & (f <= (fmax or np.inf))
    if use.sum() < 2:
        raise ValueError("need at least two positive frequency bins with positive power to fit a slope")
    return float(np.polyfit(np.log10(f[use]), np.log10(p[use]), 1)[0])


def floored_spectrum(x: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-mean radially averaged power clamped below at ``floor`` (float64): (B, C, H, W) -> (n,), (n,).

    The floor stands for a noise level (1e-3 = white noise of std ~0.03) below which power is not told
    apart; it keeps the log distance finite for data that is exactly zero at most frequencies.
    """
    if not floor > 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    freqs, power = radial_power_spectrum(x.double())
    return freqs, power.mean(0).clamp_min(floor)
