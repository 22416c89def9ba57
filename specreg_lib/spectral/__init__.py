"""Spectral regularizers of the paper (Eqs. 14-16) and the transforms they need.

Every loss takes (B, C, *spatial) tensors (audio: (B, C, T)) and returns per-sample values (B,) on the
input's device: float32, or float64 for float64 inputs; half precision is computed in float32.
``bins`` reduces over frequency bins / wavelet coefficients and channels: "mean" (default) or "sum" (the L1
norms of Eqs. 14-16 as written). Peers from the vocoder literature, not in the paper, are kinds too
(``peers.py``): "mrstft" (auraloss's multi-resolution STFT loss) and "logmel_l1" (HiFi-GAN's log-mel L1 on LMNT
DiffWave's mel); from the image literature (``image_peers.py``) "pixel_l1" (the L1 control), "dct_multiscale"
(k-diffusion's multiscale DCT loss), "focal_freq" (focal frequency loss) and "facl" (Fourier amplitude and
correlation loss). Spectral *measurements* (radially averaged power spectra, log distance,
power-law slope) live in ``specreg_lib.metrics``.

A new kind is one file: define ``fn(x0_hat, x0, *, <options>, check_finite=True, bins="mean") -> (B,)``
((B, C, *S) x 2 -> (B,), validating its inputs unless ``check_finite=False``, and honouring ``bins``) at module
level and call ``register_kind("name", fn)`` (or decorate it with ``@register_kind("name")``). Then
``SpectralLoss("name", **options)``, ``Regularizer(kind="name", options=...)`` and experiment configs accept it;
a pickled loss or a saved config refers to the kind by name, so the defining module must be imported before
loading one.
"""

from .fourier import amplitude_loss, amplitude_phase_loss
from .image_peers import (  # registers "pixel_l1", "dct_multiscale", "focal_freq", "facl"
    IMAGE_PEERS,
    dct_frequency_weights,
    dct_multiscale_loss,
    facl_loss,
    focal_frequency_loss,
    pixel_l1_loss,
)
from .loss import KINDS, SpectralLoss, register_kind
from .peers import logmel_bin_count, logmel_l1_loss, mrstft_bin_count, mrstft_loss  # registers "mrstft", "logmel_l1"
from .wavelet import wavedec, wavelet_loss

__all__ = ["IMAGE_PEERS", "KINDS", "SpectralLoss", "amplitude_loss", "amplitude_phase_loss", "dct_frequency_weights",
           "dct_multiscale_loss", "facl_loss", "focal_frequency_loss", "logmel_bin_count", "logmel_l1_loss",
           "mrstft_bin_count", "mrstft_loss", "pixel_l1_loss", "register_kind", "wavedec", "wavelet_loss"]
