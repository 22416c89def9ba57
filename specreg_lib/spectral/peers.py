"""Peer losses on x0_hat from the vocoder literature, as spectral kinds beside Eqs. 14-16 (not in the paper).

Why: Table 2 sets Eqs. 14-16 against the plain L1 eps loss only. The audio field's usual spectral terms on a
predicted waveform are a multi-resolution STFT loss (Parallel WaveGAN, FreGrad) and a log-mel L1 (HiFi-GAN);
with them in the same loop the study can tell "a spectral term helps" from "the paper's spectral term helps".

* ``"mrstft"`` (:func:`mrstft_loss`): auraloss's ``MultiResolutionSTFTLoss`` itself, with its defaults (FFT sizes
  1024/2048/512, hops 120/240/50, Hann windows 600/1200/240; spectral convergence + log-magnitude L1, averaged
  over the resolutions).
* ``"logmel_l1"`` (:func:`logmel_l1_loss`): mean |ln mel(x0_hat) - ln mel(x0)| on LMNT DiffWave's mel (torchaudio
  ``MelSpectrogram``: 22.05 kHz, n_fft 1024, window 1024, hop 256, 80 HTK mels from 20 Hz to sr/2, magnitude,
  window-normalised), each mel value clamped below at 1e-5 as LMNT and HiFi-GAN do. LMNT's settings are copied by
  value (the spectral floor imports nothing above it); a test checks them against ``data.speech.MelConfig``.
  The log is natural (HiFi-GAN's): in LMNT's normalised units, 20 log10(m) / 100, the same L1 is 0.0869 x ours.

Both take waveforms (B, C, T) (``ndim=1``, as the audio configs require) and return per-sample values (B,):
float32, or float64 for float64 input, autocast off. ``bins`` picks the reduction over frequency bins and frames:

* logmel_l1: ``"mean"`` averages |d ln mel| over the C x n_mels x (1 + T // hop) values, ``"sum"`` sums them
  (the analogue of Eqs. 14-16's L1 norms), so "sum" = :func:`logmel_bin_count` x "mean" exactly, and
  lambda_mean = lambda_sum x logmel_bin_count(T, C) gives the same term (T = 4096: 80 x 17 = 1360).
* mrstft: ``"mean"`` is auraloss's own reduction (log-magnitude L1 averaged over bins and frames); ``"sum"`` is
  auraloss's ``reduction="sum"`` (summed over the C x (n_fft/2 + 1) x frames values of each resolution). The
  spectral-convergence part is a ratio of norms, the same under both. So lambda_mean = lambda_sum x
  :func:`mrstft_bin_count` (the resolutions' mean count, 19,160 at T = 4096) gives the same log-magnitude term
  when the resolutions' mean errors agree; the convergence part then weighs that factor more under "mean".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch

from ..errors import InputError
from ._checks import check_bins, check_pair, full_precision
from .loss import register_kind

AURALOSS_FFT_SIZES = (1024, 2048, 512)  # auraloss.freq.MultiResolutionSTFTLoss defaults (0.4.0)
AURALOSS_HOP_SIZES = (120, 240, 50)
AURALOSS_WIN_LENGTHS = (600, 1200, 240)
# LMNT DiffWave's mel (params.py / preprocess.py; data.speech.MelConfig): f_max is sample_rate / 2
LMNT_SAMPLE_RATE, LMNT_N_FFT, LMNT_HOP, LMNT_N_MELS, LMNT_F_MIN, LOG_FLOOR = 22050, 1024, 256, 80, 20.0, 1e-5


class PeerOptionError(InputError, ValueError):
    """A bad option or input of a peer loss (peers.py, image_peers.py); the message names it and what to pass."""


class PeerDependencyError(InputError, ImportError):
    """A package a peer loss needs is not installed."""


def _auraloss():
    """auraloss, imported on first use so the spectral package imports without it (requirements.txt pins it)."""
    try:
        import auraloss.freq
    except ImportError as err:
        raise PeerDependencyError(f"the 'mrstft' loss needs auraloss ({err}): pip install auraloss==0.4.0 "
                                  "(make setup installs it)") from err
    return auraloss


def _check_int(value: object, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PeerOptionError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _check_waveforms(x0_hat: torch.Tensor, x0: torch.Tensor, ndim: int, check_finite: bool, longest_fft: int,
                     kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a waveform pair and fold extra middle axes into channels: (B, C, ..., T) -> 2 x (B, C', T)."""
    if ndim != 1:
        raise PeerOptionError(f"{kind} works on waveforms (B, C, T): pass ndim=1, got ndim={ndim!r}")
    x0_hat, x0 = check_pair(x0_hat, x0, 1, check_finite)
    T = x0_hat.shape[-1]
    # torch.stft(center=True) reflect-pads n_fft // 2 samples each side, which needs more samples than that
    if T <= longest_fft // 2:
        raise PeerOptionError(f"{kind}: a crop of {T} samples is too short for FFT size {longest_fft} (it needs "
                              f"> {longest_fft // 2}); use longer crops or smaller FFT sizes")
    return x0_hat.reshape(x0_hat.shape[0], -1, T), x0.reshape(x0.shape[0], -1, T)


def _resolutions(fft_sizes: Sequence[int], hop_sizes: Sequence[int], win_lengths: Sequence[int]
                 ) -> tuple[list[int], list[int], list[int]]:
    """Check the STFT resolutions (lists from JSON or tuples): equal lengths, ints >= 1, window <= FFT size."""
    seqs = {"fft_sizes": fft_sizes, "hop_sizes": hop_sizes, "win_lengths": win_lengths}
    for name, seq in seqs.items():
        if isinstance(seq, str | bytes) or not isinstance(seq, Sequence) or not seq:
            raise PeerOptionError(f"mrstft: {name} must be a non-empty list of ints, got {seq!r}")
    if not len(fft_sizes) == len(hop_sizes) == len(win_lengths):
        raise PeerOptionError(f"mrstft: fft_sizes, hop_sizes and win_lengths need one entry per resolution, got "
                              f"{len(fft_sizes)}, {len(hop_sizes)} and {len(win_lengths)}")
    ffts, hops, wins = ([_check_int(v, f"mrstft: {name}[{i}]") for i, v in enumerate(seqs[name])] for name in seqs)
    for n_fft, win in zip(ffts, wins):
        if win > n_fft:
            raise PeerOptionError(f"mrstft: window length {win} exceeds its FFT size {n_fft}; pass win <= n_fft")
    return ffts, hops, wins


def _check_weight(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise PeerOptionError(f"mrstft: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _frames(n_samples: int, n_fft: int, hop: int) -> int:
    """STFT frames of a centred (reflect-padded by n_fft // 2) signal of n_samples: 1 + T // hop for even n_fft."""
    return 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop


def mrstft_bin_count(n_samples: int, channels: int = 1, fft_sizes: Sequence[int] = AURALOSS_FFT_SIZES,
                     hop_sizes: Sequence[int] = AURALOSS_HOP_SIZES) -> float:
    """(1/R) sum_r C (n_fft_r / 2 + 1) frames_r: how much larger "sum" makes the log-magnitude term than "mean"."""
    counts = [channels * (n // 2 + 1) * _frames(n_samples, n, h) for n, h in zip(fft_sizes, hop_sizes)]
    return sum(counts) / len(counts)


def logmel_bin_count(n_samples: int, channels: int = 1, n_mels: int = LMNT_N_MELS, hop_length: int = LMNT_HOP,
                     n_fft: int = LMNT_N_FFT) -> int:
    """C x n_mels x frames: logmel_l1's "sum" / "mean" ratio, exactly (1360 for T = 4096 at LMNT's mel)."""
    return channels * n_mels * _frames(n_samples, n_fft, hop_length)


@register_kind("mrstft")
@full_precision
def mrstft_loss(
    x0_hat: torch.Tensor,
    x0: torch.Tensor,
    ndim: int = 1,
    fft_sizes: Sequence[int] = AURALOSS_FFT_SIZES,
    hop_sizes: Sequence[int] = AURALOSS_HOP_SIZES,
    win_lengths: Sequence[int] = AURALOSS_WIN_LENGTHS,
    w_sc: float = 1.0,
    w_log_mag: float = 1.0,
    check_finite: bool = True,
    bins: str = "mean",
) -> torch.Tensor:
    """auraloss's multi-resolution STFT loss (Yamamoto et al. 2019) of each sample; (B, C, T) -> (B,).

    Per resolution w_sc ||S_hat - S||_F / ||S||_F + w_log_mag red|ln S_hat - ln S| (S = STFT magnitude, floored
    at 1e-4 by auraloss), averaged over the resolutions; red = ``bins``: "mean" or "sum" over the C x bins x
    frames values (module docstring: the lambda that matches them).
    """
    check_bins(bins)
    ffts, hops, wins = _resolutions(fft_sizes, hop_sizes, win_lengths)
    w_sc, w_log_mag = _check_weight(w_sc, "w_sc"), _check_weight(w_log_mag, "w_log_mag")
    if w_sc == w_log_mag == 0:
        raise PeerOptionError("mrstft: w_sc and w_log_mag are both 0, so the loss would be 0; set one > 0")
    x0_hat, x0 = _check_waveforms(x0_hat, x0, ndim, check_finite, max(ffts), "mrstft")
    # Built per call (0.3 ms): it holds only its windows, and moves them to the input's device itself.
    loss = _auraloss().freq.MultiResolutionSTFTLoss(ffts, hops, wins, w_sc=w_sc, w_log_mag=w_log_mag,
                                                    reduction=bins)
    # auraloss's spectral convergence is ONE ratio of norms over its whole input batch, so a batched call would
    # couple the samples: one sample per call (measured: as fast as the batched call on CPU at B = 8, T = 4096).
    return torch.stack([loss(x0_hat[i: i + 1], x0[i: i + 1]) for i in range(x0_hat.shape[0])])


@functools.lru_cache(maxsize=8)
def _mel(sample_rate: int, n_fft: int, win_length: int, hop_length: int, n_mels: int, f_min: float, f_max: float,
         dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    """LMNT's torchaudio MelSpectrogram (magnitude, window-normalised) on ``device`` in ``dtype``; cached."""
    import torchaudio.transforms as TT

    mel = TT.MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
                            f_min=f_min, f_max=f_max, n_mels=n_mels, power=1.0, normalized=True)
    return mel.to(device=device, dtype=dtype)


@register_kind("logmel_l1")
@full_precision
def logmel_l1_loss(
    x0_hat: torch.Tensor,
    x0: torch.Tensor,
    ndim: int = 1,
    sample_rate: int = LMNT_SAMPLE_RATE,
    n_fft: int = LMNT_N_FFT,
    win_length: int = LMNT_N_FFT,
    hop_length: int = LMNT_HOP,
    n_mels: int = LMNT_N_MELS,
    f_min: float = LMNT_F_MIN,
    f_max: float | None = None,
    floor: float = LOG_FLOOR,
    check_finite: bool = True,
    bins: str = "mean",
) -> torch.Tensor:
    """HiFi-GAN's mel loss on LMNT's mel: red |ln max(mel x0_hat, floor) - ln max(mel x0, floor)|; (B, C, T) -> (B,).

    red = ``bins``: "mean" or "sum" over the C x n_mels x (1 + T // hop_length) values. ``f_max=None`` is
    sample_rate / 2 (LMNT). Below ``floor`` (silence) a value and its gradient are constant: no NaN, no push.
    """
    check_bins(bins)
    for name, value in (("sample_rate", sample_rate), ("n_fft", n_fft), ("win_length", win_length),
                        ("hop_length", hop_length), ("n_mels", n_mels)):
        _check_int(value, f"logmel_l1: {name}")
    if win_length > n_fft:
        raise PeerOptionError(f"logmel_l1: win_length {win_length} exceeds n_fft {n_fft}; pass win_length <= n_fft")
    f_max = sample_rate / 2.0 if f_max is None else f_max
    if not all(isinstance(f, int | float) and not isinstance(f, bool) for f in (f_min, f_max)) or not (
            0 <= f_min < f_max <= sample_rate / 2):
        raise PeerOptionError(f"logmel_l1: need 0 <= f_min < f_max <= sample_rate / 2 = {sample_rate / 2}, got "
                              f"f_min={f_min!r}, f_max={f_max!r}")
    if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0 < floor < math.inf:
        raise PeerOptionError(f"logmel_l1: floor must be a finite number > 0, got {floor!r}")
    x0_hat, x0 = _check_waveforms(x0_hat, x0, ndim, check_finite, n_fft, "logmel_l1")
    mel = _mel(sample_rate, n_fft, win_length, hop_length, n_mels, float(f_min), float(f_max), x0_hat.dtype,
               x0_hat.device)
    B, T = x0_hat.shape[0], x0_hat.shape[-1]
    log_hat = mel(x0_hat.reshape(-1, T)).clamp_min(floor).log()  # (B C, T) -> (B C, n_mels, frames)
    with torch.set_grad_enabled(x0.requires_grad and torch.is_grad_enabled()):  # data x0: keep it out of the graph
        log_ref = mel(x0.reshape(-1, T)).clamp_min(floor).log()
    d = (log_hat - log_ref).abs().reshape(B, -1)  # (B, C n_mels frames)
    return d.sum(1) if bins == "sum" else d.mean(1)
