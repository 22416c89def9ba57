"""The image study's metrics that are not the trained loss (issue 21, item 2), each a value per set of images.

Every function takes (B, C, H, W) float tensors in [-1, 1] (the sampler's and the datasets' range) and returns one
number for the whole set (or, for the copy check, one ratio per sample); the study reports each beside its
:func:`noise_floor`, held-out data against data at the same count, the yardstick of a difference.

* :func:`hf_power_ratio`: high-frequency power of the samples over the reference's (radial power spectrum).
* :func:`laplacian_energy_ratio`: the same question asked in pixel space, by the discrete Laplacian.
* :func:`feature_distance`: the Frechet distance in a feature space fixed before the study
  (:class:`RandomConvFeatures`: no downloaded weights exist here).
* :func:`nearest_neighbour_copies`: are samples copies of training patches (memorisation)?
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .frechet import frechet_distance, gaussian_stats
from .spectra import high_frequency_energy_ratio, radial_power_spectrum

# Distances below this count as "the same patch": far under one 8-bit level (2/255 ~ 0.0078 in [-1, 1]) and far
# above the float64 round-off of ||a||^2 + ||b||^2 - 2 a.b (~1e-6 for 64x64x3 patches).
SAME_PATCH_ATOL = 1e-4


class ImageMetricInputError(InputError, ValueError):
    """Images given to an image-study metric are not (B, C, H, W) float tensors in [-1, 1], or do not match."""


def _check_images(x: object, name: str, min_size: int = 2) -> torch.Tensor:
    """Require a finite real float tensor (B, C, H, W), B >= 1, in [-1, 1]; half precision is upcast to float32."""
    if not isinstance(x, torch.Tensor):
        raise ImageMetricInputError(f"{name} must be a torch.Tensor (B, C, H, W), got {type(x).__name__}")
    if not x.is_floating_point() or x.is_complex():
        raise ImageMetricInputError(f"{name} has dtype {x.dtype}; convert 8-bit images with x.float() / 127.5 - 1")
    if x.dim() != 4 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ImageMetricInputError(f"{name} has shape {tuple(x.shape)}; pass images shaped (B, C, H, W), B >= 1")
    if min(x.shape[-2:]) < min_size:
        raise ImageMetricInputError(f"{name} images are {x.shape[-2]}x{x.shape[-1]} pixels; this metric needs at "
                                    f"least {min_size}x{min_size}")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    if not bool(torch.isfinite(x).all()):
        raise ImageMetricInputError(f"{name} contains NaN or Inf; check the sampler that produced it")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - 1e-6 or hi > 1 + 1e-6:
        raise ImageMetricInputError(f"{name} spans [{lo:.3g}, {hi:.3g}], outside [-1, 1]; clamp samples with "
                                    "x.clamp(-1, 1) or map 8-bit images with x / 127.5 - 1")
    return x


def _check_set_pair(samples: object, reference: object, min_size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two image sets that must share channels and size (their counts may differ)."""
    s = _check_images(samples, "samples", min_size)
    r = _check_images(reference, "reference", min_size)
    if s.shape[1:] != r.shape[1:]:
        raise ImageMetricInputError(f"samples are {tuple(s.shape[1:])} (C, H, W) but reference is "
                                    f"{tuple(r.shape[1:])}; crop both sets to one size and channel count")
    dtype = torch.float64 if torch.float64 in (s.dtype, r.dtype) else torch.float32
    return s.to(dtype), r.to(device=s.device, dtype=dtype)


def hf_power_ratio(samples: torch.Tensor, reference: torch.Tensor, cutoff: float = 0.25,
                   window: str | None = "hann") -> float:
    """Mean radial power at f >= ``cutoff`` cycles/pixel of the samples over the reference's (1 = same content).

    The set's spectrum is the batch mean of :func:`radial_power_spectrum` (P = |fft2 x|^2 / (H W), integer-radius
    bins); the band value is the mean over its bins, as in :func:`high_frequency_energy_ratio`, which computes it.
    ``window="hann"`` (default, as ``specreg spectrum``): the study's images are crops, and without a taper the
    wrap-around edge adds a ~f^-2 floor that hides missing high frequencies (docs/spectral.md); None for periodic
    test signals. White noise of variance s^2 has expected power s^2 in every bin either way.
    """
    s, r = _check_set_pair(samples, reference)
    if not 0 < cutoff <= 0.5:
        raise ImageMetricInputError(f"cutoff={cutoff} is outside (0, 0.5] cycles/pixel; 0.25 is half Nyquist")
    freqs, ps = radial_power_spectrum(s, window=window)
    _, pr = radial_power_spectrum(r, window=window)
    if float(pr.mean(0)[freqs >= cutoff].mean()) <= 0:
        raise ImageMetricInputError(f"reference has no power at f >= {cutoff} cycles/pixel (constant images?); "
                                    "the ratio is undefined: use a textured reference or a lower cutoff")
    return high_frequency_energy_ratio(freqs, ps, pr, cutoff=cutoff)


def laplacian_energy(x: torch.Tensor) -> torch.Tensor:
    """Mean squared 5-point Laplacian response per image, (B, C, H, W) -> (B,) (the kernel scipy.ndimage.laplace uses).

    L x[i, j] = x[i-1, j] + x[i+1, j] + x[i, j-1] + x[i, j+1] - 4 x[i, j], per channel. Boundary: scipy's "reflect"
    (half-sample symmetric, d c b a | a b c d), which for a one-pixel pad is torch's "replicate": the edge pixel
    is its own outside neighbour, so a crop's border adds no false edge (a periodic wrap would add its jump).
    """
    x = _check_images(x, "x")
    B, C, H, W = x.shape
    kernel = x.new_tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).expand(C, 1, 3, 3)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    response = F.conv2d(padded, kernel, groups=C)  # (B, C, H, W)
    return response.square().mean((1, 2, 3))


def laplacian_energy_ratio(samples: torch.Tensor, reference: torch.Tensor) -> float:
    """Set-mean :func:`laplacian_energy` of the samples over the reference's (1 = same; < 1 = smoother samples).

    An independent check on :func:`hf_power_ratio`: no Fourier transform, no window, no cutoff. The Laplacian's
    transfer function is -4 (sin^2(pi fy) + sin^2(pi fx)), so it weights power by ~f^4 and is dominated by the
    highest frequencies; white noise of variance s^2 gives E[(L x)^2] = 20 s^2 away from the border.
    """
    s, r = _check_set_pair(samples, reference)
    denominator = float(laplacian_energy(r).double().mean())
    if denominator <= 0:
        raise ImageMetricInputError("reference images are constant (zero Laplacian energy); the ratio is undefined: "
                                    "use a textured reference")
    return float(laplacian_energy(s).double().mean()) / denominator


class RandomConvFeatures(torch.nn.Module):
    """A feature space fixed before the study: coarse colour layout + a frozen random-weight conv net, seed 0.

    Why this space: no pretrained weights can be downloaded here, and the space must be none of the trained losses
    (not Fourier, not wavelet bands). Randomly initialised conv nets are usable embeddings for distribution metrics
    of generative models (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models", ICML,
    random-init embeddings): their filters respond to local edges and texture at every scale, so blur, noise and
    colour shifts all move them. Images (B, C, H, W) in [-1, 1] -> (B, C * 4 + sum(widths)) float64:

    * ``adaptive_avg_pool2d(x, 2)``: mean colour of each image quarter (layout and colour balance);
    * three 3x3 conv layers (Gaussian weights from ``torch.Generator().manual_seed(seed)`` on the CPU, made zero-mean
      and of squared norm 2 per filter (He scale), no bias, replicate padding), each followed by ReLU and a 2x2
      average pool; each layer's channel means of the ReLU response.

    The weights are drawn once in ``__init__`` (CPU generator, so the same on every device and run) and kept as
    buffers; nothing is trained. ``seed`` is part of the space: compare only numbers from one seed.
    """

    def __init__(self, channels: int = 3, widths: tuple[int, ...] = (16, 32, 32), seed: int = 0) -> None:
        super().__init__()
        self.channels, self.widths, self.seed = channels, tuple(widths), seed
        g = torch.Generator().manual_seed(seed)
        c_in = channels
        for i, c_out in enumerate(self.widths):
            w = torch.randn(c_out, c_in, 3, 3, generator=g, dtype=torch.float64)
            # zero-mean filters of squared norm 2 (He scale): they answer structure, not brightness, and never
            # die (a filter with a negative mean on the non-negative ReLU maps would be 0 for every image)
            w = w - w.mean((1, 2, 3), keepdim=True)
            w = w * math.sqrt(2.0) / w.flatten(1).norm(dim=1)[:, None, None, None]
            self.register_buffer(f"w{i}", w.float())
            c_in = c_out

    @property
    def dim(self) -> int:
        """Feature dimension D."""
        return 4 * self.channels + sum(self.widths)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_images(x, "x", min_size=2 ** len(self.widths))
        if x.shape[1] != self.channels:
            raise ImageMetricInputError(f"x has {x.shape[1]} channels; these features were built for "
                                        f"{self.channels} (RandomConvFeatures(channels={x.shape[1]}))")
        h = x.float()
        out = [F.adaptive_avg_pool2d(h, 2).flatten(1)]  # (B, 4 C)
        for i in range(len(self.widths)):
            h = F.relu(F.conv2d(F.pad(h, (1, 1, 1, 1), mode="replicate"), getattr(self, f"w{i}").to(h.device)))
            out.append(h.mean((2, 3)))  # (B, width_i)
            h = F.avg_pool2d(h, 2)
        return torch.cat(out, 1).double()


def feature_distance(samples: torch.Tensor, reference: torch.Tensor,
                     features: Callable[[torch.Tensor], torch.Tensor] | None = None, chunk: int = 256) -> float:
    """Squared Frechet distance between Gaussians fitted to the two sets' features (0 = same mean and covariance).

    d^2 = ||mu_s - mu_r||^2 + Tr(S_s + S_r - 2 (S_s S_r)^(1/2)) (Dowson & Landau 1982, :func:`frechet_distance`).
    ``features``: (B, C, H, W) -> (B, D); default :class:`RandomConvFeatures` (seed 0, D = 92 for RGB). Like FID it
    is biased upwards at finite counts: compare values only at one count, and against :func:`noise_floor`.
    ``chunk`` bounds how many images pass the extractor at once.
    """
    s, r = _check_set_pair(samples, reference)
    if min(s.shape[0], r.shape[0]) < 2:
        raise ImageMetricInputError(f"feature_distance needs at least 2 images per set to fit a covariance, got "
                                    f"{s.shape[0]} samples and {r.shape[0]} reference images")
    if not isinstance(chunk, int) or chunk < 1:
        raise ImageMetricInputError(f"chunk must be a positive int, got {chunk!r}")
    extractor = features if features is not None else RandomConvFeatures(channels=s.shape[1]).to(s.device)

    def embed(x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([torch.as_tensor(extractor(x[i:i + chunk])).detach().double().cpu()
                              for i in range(0, x.shape[0], chunk)]).numpy()

    fs, fr = embed(s), embed(r)
    if fs.ndim != 2 or fs.shape[1] != fr.shape[1]:
        raise ImageMetricInputError(f"the feature extractor returned shapes {fs.shape} and {fr.shape}; it must map "
                                    "(B, C, H, W) to (B, D) with one D")
    return frechet_distance(*gaussian_stats(fs), *gaussian_stats(fr))


@dataclass(frozen=True)
class CopyCheck:
    """Result of :func:`nearest_neighbour_copies`: per-sample ratios (N,), nearest training indices (N,), share."""

    ratios: np.ndarray
    nearest: np.ndarray
    share_below: float
    threshold: float


def _min_distances(a: torch.Tensor, b: torch.Tensor, chunk: int,
                   exclude_same: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest row of b for every row of a, in float64 chunks of (chunk, chunk) distances: -> (dist (N,), idx (N,)).

    ``exclude_same``: skip rows of b within SAME_PATCH_ATOL of the row of a (itself and exact duplicates).
    """
    best = torch.full((a.shape[0],), math.inf, dtype=torch.float64, device=a.device)
    arg = torch.full((a.shape[0],), -1, dtype=torch.long, device=a.device)
    for i in range(0, a.shape[0], chunk):
        ai = a[i:i + chunk].double()
        na = ai.square().sum(1, keepdim=True)  # (n, 1)
        for j in range(0, b.shape[0], chunk):
            bj = b[j:j + chunk].double()
            # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b, in float64 (error ~1e-12 on the square for 64x64x3 patches)
            d = (na + bj.square().sum(1)[None, :] - 2 * ai @ bj.T).clamp_min(0).sqrt()  # (n, m)
            if exclude_same:
                d = d.masked_fill(d <= SAME_PATCH_ATOL, math.inf)
            dmin, darg = d.min(1)
            better = dmin < best[i:i + chunk]
            best[i:i + chunk] = torch.where(better, dmin, best[i:i + chunk])
            arg[i:i + chunk] = torch.where(better, darg + j, arg[i:i + chunk])
    return best, arg


def nearest_neighbour_copies(samples: torch.Tensor, train: torch.Tensor, threshold: float = 0.5,
                             chunk: int = 512) -> CopyCheck:
    """Memorisation check: ratio_i = ||s_i - t*||_2 / ||t* - t**||_2 per sample (<< 1 = a copy of a training patch).

    t* is the training patch nearest to sample s_i and t** the training patch nearest to t* other than itself (and
    its exact duplicates): a sample as close to t* as t*'s own neighbours scores ~1, an exact copy 0. Normalising
    by the local neighbour distance (rather than one global scale) keeps flat patches, which crowd together, from
    being flagged. Returns the ratios, the nearest training indices, and the share of ratios below ``threshold``
    (0.5 = twice as close as any other training patch). Distances run on ``chunk`` x ``chunk`` blocks in float64,
    so memory stays bounded; the training set's own neighbours are searched only for the patches that are nearest
    to some sample (cost ~2 N_samples N_train pixel products).
    """
    s, t = _check_set_pair(samples, train)
    if t.shape[0] < 2:
        raise ImageMetricInputError(f"train has {t.shape[0]} patch; the copy check needs at least 2")
    if not 0 < threshold:
        raise ImageMetricInputError(f"threshold={threshold} must be > 0 (0.5: twice as close as a neighbour)")
    if not isinstance(chunk, int) or chunk < 1:
        raise ImageMetricInputError(f"chunk must be a positive int, got {chunk!r}")
    s, t = s.flatten(1), t.flatten(1)
    dist, nearest = _min_distances(s, t, chunk)
    used, back = torch.unique(nearest, return_inverse=True)
    own, _ = _min_distances(t[used], t, chunk, exclude_same=True)
    if bool(torch.isinf(own).any()):
        raise ImageMetricInputError("all training patches are identical; the copy check needs distinct patches")
    ratios = (dist / own[back]).cpu().numpy()
    return CopyCheck(ratios=ratios, nearest=nearest.cpu().numpy(),
                     share_below=float((ratios < threshold).mean()), threshold=float(threshold))


def noise_floor(metric: Callable[[torch.Tensor, torch.Tensor], float], data_a: torch.Tensor,
                data_b: torch.Tensor | None = None, count: int | None = None, seed: int = 0) -> float:
    """The metric's value for held-out data against data at the same count: what "no difference" measures as.

    ``metric(data_a[:count], data_b[:count])``; ``data_b=None`` splits ``data_a`` into two disjoint halves by a
    permutation from ``torch.Generator().manual_seed(seed)``. ``count`` should be the number of samples the metric
    is reported at (finite-count bias, as in FID); default: all that both sides have. A sample set's value is a
    difference only where it lies beyond this floor (e.g. |ratio - 1| beyond |floor - 1|).
    """
    a = _check_images(data_a, "data_a")
    if data_b is None:
        perm = torch.randperm(a.shape[0], generator=torch.Generator().manual_seed(seed)).to(a.device)
        half = a.shape[0] // 2
        a, b = a[perm[:half]], a[perm[half:2 * half]]
    else:
        b = _check_images(data_b, "data_b")
    available = min(a.shape[0], b.shape[0])
    n = available if count is None else count
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= available:
        raise ImageMetricInputError(f"count={count!r} must be an int in [1, {available}] (the images each side has"
                                    f"{' after the split into halves' if data_b is None else ''}); hold out more data")
    value = metric(a[:n], b[:n])
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ImageMetricInputError(f"metric returned {type(value).__name__}; noise_floor needs one number "
                                    "(wrap the metric so that it returns a float)") from None
