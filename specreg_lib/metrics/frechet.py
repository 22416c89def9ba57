"""The Frechet distance between two Gaussians: the one function behind FID (images) and FAD (audio).

d^2 = ||mu1 - mu2||^2 + Tr(Sigma1 + Sigma2 - 2 (Sigma1 Sigma2)^(1/2))   (Frechet / 2-Wasserstein, Dowson & Landau 1982)

Written here rather than taken from clean-fid or frechet-audio-distance because each of those keeps it
inside its own feature pipeline; FID and FAD must share one, float64 implementation.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, ddof=1) covariance of features (N, D) -> ((D,), (D, D)), in float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (N, D) with N >= 2 samples, got shape {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or Inf: check the feature extractor's input")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (float64).

    When Sigma1 Sigma2 is singular (fewer samples than dimensions) its square root is taken of the
    products of the covariances offset by eps * I, as clean-fid and pytorch-fid do.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shape mismatch: mu1 {mu1.shape}, sigma1 {s1.shape}, mu2 {mu2.shape}, sigma2 {s2.shape}; "
                         "expected mu (D,) and sigma (D, D) with the same D for both")
    for name, a in (("mu1", mu1), ("sigma1", s1), ("mu2", mu2), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or Inf")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off gives tiny imaginary parts; a large one means the covariances are not PSD.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"covariance product has a square root with imaginary part "
                             f"{np.abs(covmean.imag).max():.3g}: are sigma1 and sigma2 covariance matrices?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))
