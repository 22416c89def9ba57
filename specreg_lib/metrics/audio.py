"""The audio metrics of Table 2: MR-STFT, PESQ, NDB, FAD (and UTMOS in ``audio_mos.py``), each with its protocol.

* MR-STFT: ``auraloss.freq.MultiResolutionSTFTLoss()`` with its defaults (FFT sizes 1024/2048/512, hops
  120/240/50, windows 600/1200/240, spectral convergence + log-magnitude L1), per clip against the ground truth.
  The paper does not give its resolutions; auraloss's defaults are the common choice.
* PESQ: ITU-T P.862.2 wide-band MOS-LQO from the ``pesq`` package, both clips resampled to 16 kHz with
  ``torchaudio.functional.resample``, degraded against the ground-truth clip.
* NDB/K (Richardson & Weiss 2018): K-means (K = 50, ``scipy.cluster.vq.kmeans2`` with k-means++ seeding and a
  fixed seed) on the REFERENCE features, generated features assigned to the nearest centre, a two-tailed
  two-proportion z-test per bin at alpha = 0.05; the share of bins that differ.
* FAD: the Frechet distance (``metrics.frechet``, the same function as FID) between Gaussian fits of
  embeddings of the reference and generated sets: VGGish (``audio_embed.py``) in the paper profile, log-mel
  frames offline.
* Pitch: F0 RMSE in cents and the V/UV error (``pitch.py``), per pair of clips, pooled over frames.

``paired_metrics`` and ``distribution_metrics`` compute them as the audio experiment's ``evaluate`` reports them;
``noise_floors`` runs the same two on held-out audio against held-out audio, so a floor and a result are measured
by one code path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..errors import InputError
from .frechet import frechet_distance, gaussian_stats

PESQ_RATE = 16000


class FloorInputError(InputError, ValueError):
    """Held-out clips the noise floors cannot use; the message says what to pass instead."""


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """(B, T) or (B, 1, T) -> (B, 1, T) float32."""
    x = torch.as_tensor(x)
    if x.ndim == 2:
        x = x.unsqueeze(1)
    if x.ndim != 3 or x.shape[1] != 1 or x.shape[-1] == 0:
        raise ValueError(f"{name} must be mono audio (B, T) or (B, 1, T), got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x.float()


def mr_stft_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT distance (auraloss defaults) of each x[b] to the reference y[b]: -> (B,)."""
    import auraloss

    x, y = _as_batch(x, "x"), _as_batch(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must have the same shape (trim them first)")
    if x.shape[-1] < 2048:
        raise ValueError(f"clips need >= 2048 samples (the largest auraloss FFT size), got {x.shape[-1]}")
    loss = auraloss.freq.MultiResolutionSTFTLoss()
    # auraloss's spectral convergence is a ratio of norms over the WHOLE batch: one clip per call
    with torch.no_grad():
        return torch.stack([loss(x[b: b + 1], y[b: b + 1]) for b in range(x.shape[0])])


def _resample_16k(x: np.ndarray, sample_rate: int) -> np.ndarray:
    import torchaudio.functional as AF

    t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return (AF.resample(t, sample_rate, PESQ_RATE) if sample_rate != PESQ_RATE else t).numpy()


# pesq_wb(x, x) for any speech clip x: the top of P.862.2's MOS-LQO mapping (measured 4.6439 with pesq 0.0.4).
PESQ_WB_MAX = 4.6439


def difference_floor(metric: str, floor: float) -> float:
    """A noise floor (a metric's value for real audio against real audio, :func:`noise_floors`) as the yardstick of a
    DIFFERENCE between two results: the distance from a perfect score. The distances (mr_stft, f0_rmse_cents,
    vuv_error, ndb, fd_mel, fad) are perfect at 0, so their floor is already that; PESQ is perfect at PESQ_WB_MAX."""
    return PESQ_WB_MAX - floor if metric == "pesq" else floor


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float:
    """Wide-band PESQ (P.862.2 MOS-LQO, about -0.5 .. 4.64) of ``degraded`` against ``reference``, both 1-D."""
    from pesq import pesq

    ref, deg = np.asarray(reference), np.asarray(degraded)
    if ref.ndim != 1 or deg.ndim != 1 or ref.size == 0 or deg.size == 0:
        raise ValueError(f"reference and degraded must be non-empty 1-D clips, got {ref.shape} and {deg.shape}")
    if ref.shape != deg.shape:
        raise ValueError(f"reference ({ref.size} samples) and degraded ({deg.size}) must have the same length")
    if not (np.isfinite(ref).all() and np.isfinite(deg).all()):
        raise ValueError("reference or degraded contains NaN or Inf")
    if np.abs(ref).max() == 0:
        raise ValueError("reference is silent: PESQ needs speech in the reference clip")
    try:
        return float(pesq(PESQ_RATE, _resample_16k(ref, sample_rate), _resample_16k(deg, sample_rate), "wb"))
    except Exception as err:  # pesq raises its own types (NoUtterancesError, BufferTooShortError)
        raise ValueError(f"PESQ failed ({type(err).__name__}: {err}); clips must hold speech and last >= 0.25 s"
                         ) from err


def ndb(reference_features: np.ndarray, generated_features: np.ndarray, k: int = 50, alpha: float = 0.05,
        seed: int = 0) -> float:
    """NDB/K: share of the K k-means bins of the reference whose generated proportion differs (z-test, alpha)."""
    from scipy.cluster.vq import kmeans2, vq
    from scipy.special import erfc  # lighter than scipy.stats (seconds of import time)

    ref = np.asarray(reference_features, dtype=np.float64)
    gen = np.asarray(generated_features, dtype=np.float64)
    if ref.ndim != 2 or gen.ndim != 2 or ref.shape[1] != gen.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D, got {ref.shape} and {gen.shape}")
    if not 2 <= k <= ref.shape[0]:
        raise ValueError(f"k must lie in [2, {ref.shape[0]}] (the reference count), got {k}")
    if not 0 < alpha < 1 or gen.shape[0] < 1:
        raise ValueError(f"need 0 < alpha < 1 and at least one generated sample, got alpha={alpha}, "
                         f"{gen.shape[0]} samples")
    if not (np.isfinite(ref).all() and np.isfinite(gen).all()):
        raise ValueError("features contain NaN or Inf")
    centres, ref_labels = kmeans2(ref, k, minit="++", seed=np.random.default_rng(seed))
    gen_labels, _ = vq(gen, centres)
    n1, n2 = ref.shape[0], gen.shape[0]
    p1 = np.bincount(ref_labels, minlength=k) / n1  # (K,)
    p2 = np.bincount(gen_labels, minlength=k) / n2
    p = (p1 * n1 + p2 * n2) / (n1 + n2)  # pooled proportion
    se = np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (p1 - p2) / se, 0.0)
    p_values = erfc(np.abs(z) / np.sqrt(2))  # two-tailed: 2 (1 - Phi(|z|))
    return float(np.mean(p_values < alpha))


def fad(reference_embeddings: np.ndarray, generated_embeddings: np.ndarray) -> float:
    """Frechet audio distance between two embedding sets (N, D): the shared Frechet distance of their Gaussians."""
    return frechet_distance(*gaussian_stats(reference_embeddings), *gaussian_stats(generated_embeddings))


def paired_metrics(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray], sample_rate: int,
                   pesq: bool = True) -> dict[str, float]:
    """The metrics of each generated clip against ITS reference (equal lengths), averaged or pooled over clips:
    mean MR-STFT, mean wide-band PESQ (when ``pesq``), F0 RMSE in cents and V/UV error (frames pooled)."""
    from .pitch import pitch_errors

    pairs = list(zip(generated, reference, strict=True))
    out = {"mr_stft": float(np.mean([float(mr_stft_distance(torch.as_tensor(g)[None], torch.as_tensor(r)[None])[0])
                                     for g, r in pairs]))}
    if pesq:
        out["pesq"] = float(np.mean([pesq_wb(r, g, sample_rate) for g, r in pairs]))
    return {**out, **pitch_errors(list(generated), list(reference), sample_rate)}


def distribution_metrics(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray], sample_rate: int, *,
                         n_mels: int = 80, max_feature_frames: int = 20000, ndb_k: int = 50, ndb_alpha: float = 0.05,
                         embed: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None) -> dict[str, float]:
    """The set-against-set metrics (no pairing): NDB/K on log-mel frames, and the Frechet distance of ``embed``'s
    embeddings ("fad", e.g. VGGish) or, with ``embed=None``, of the log-mel frames ("fd_mel")."""
    from .audio_embed import mel_frame_features

    f_ref = mel_frame_features(reference, sample_rate, n_mels, max_feature_frames)
    f_gen = mel_frame_features(generated, sample_rate, n_mels, max_feature_frames)
    out = {"ndb": ndb(f_ref, f_gen, ndb_k, ndb_alpha)}
    if embed is None:
        out["fd_mel"] = fad(f_ref, f_gen)
    else:
        out["fad"] = fad(embed(reference), embed(generated))
    return out


def half_sample_delay(clip: np.ndarray) -> np.ndarray:
    """``clip`` delayed by half a sample, band-limited (a linear phase ramp on the rFFT), same length.

    The clip is zero-padded to twice its length first: a circular delay would wrap its end onto its start, and a
    clip cut mid-word (``sample.max_frames``) then gets a click that the pitch tracker reads as octave errors
    (measured: 50 cents RMSE on a cropped stand-in clip, 0.4 cents padded)."""
    x = np.asarray(clip, dtype=np.float64)
    n = x.size
    spectrum = np.fft.rfft(x, 2 * n)  # (n + 1,): zero-padded to 2n
    ramp = np.exp(-1j * np.pi * np.arange(spectrum.size) / (2 * n))  # e^{-i w d}, w = 2 pi k / 2n, d = 1/2
    return np.fft.irfft(spectrum * ramp, 2 * n)[:n].astype(np.asarray(clip).dtype)


def noise_floors(clips: Sequence[np.ndarray], sample_rate: int, *, pesq: bool = True, n_mels: int = 80,
                 max_feature_frames: int = 20000, ndb_k: int = 50, ndb_alpha: float = 0.05,
                 embed: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None, seed: int = 0
                 ) -> dict[str, float]:
    """Every metric of ``paired_metrics`` and ``distribution_metrics`` for held-out audio against held-out audio:
    the value a perfect vocoder is measured at, so a result (or a difference between variants) within it is noise.

    * Distribution metrics (ndb, fd_mel | fad): two disjoint halves of the clips (a fixed-seed split, N // 2 each),
      one as the reference, one as the "generated" set. Both are real speech, so any distance left is the
      estimator's own finite-sample bias and spread. It is measured at N // 2 clips a set, the results at N: the
      Frechet bias shrinks about as 1 / N, so this floor overstates the one at N (a conservative yardstick).
    * Paired metrics (mr_stft, pesq, f0_rmse_cents, vuv_error): a clip against itself is trivially perfect (0, 4.64,
      0, 0) and says nothing. Against a copy of itself delayed by HALF A SAMPLE instead: that changes no magnitude
      spectrum and no pitch and cannot be heard, and every vocoder output differs from its reference at least this
      way (its phase is not in the mel), yet the STFT frames, PESQ's alignment and the pitch tracker's frame grid
      all see different samples. What a metric reports for it is its resolution: a change smaller than that is not
      one the metric can tell from an inaudible shift.
    """
    clips = [np.asarray(c) for c in clips]
    if len(clips) < 2:
        raise FloorInputError(f"noise floors need >= 2 held-out clips (two halves), got {len(clips)}; pass more "
                              "clips (sample.n_clips = 0 takes them all)")
    order = np.random.default_rng(seed).permutation(len(clips))
    half = len(clips) // 2
    first, second = [clips[i] for i in order[:half]], [clips[i] for i in order[half: 2 * half]]
    floors = distribution_metrics(second, first, sample_rate, n_mels=n_mels, max_feature_frames=max_feature_frames,
                                  ndb_k=ndb_k, ndb_alpha=ndb_alpha, embed=embed)
    return {**paired_metrics([half_sample_delay(c) for c in clips], clips, sample_rate, pesq=pesq), **floors}
