"""Spectral regularizers of the paper (Eqs. 14-16) and the transforms they need.

Every loss takes (B, C, *spatial) tensors (audio: (B, C, T)) and returns per-sample values (B,) on the
input's device: float32, or float64 for float64 inputs; half precision is computed in float32.
Spectral *measurements* (radially averaged power spectra, log distance, power-law slope) live in
``specreg_lib.metrics``.
"""

from .fourier import amplitude_loss, amplitude_phase_loss
from .loss import KINDS, SpectralLoss
from .wavelet import wavedec, wavelet_loss

__all__ = ["KINDS", "SpectralLoss", "amplitude_loss", "amplitude_phase_loss", "wavedec", "wavelet_loss"]
