"""Spectral regularizers of the paper (Eqs. 14-16) and spectral diagnostics.

Every loss takes (B, C, *spatial) tensors (audio: (B, C, T)) and returns per-sample values (B,) on the
input's device: float32, or float64 for float64 inputs; half precision is computed in float32.
"""

from .diagnostics import (
    fit_power_law_slope,
    high_frequency_energy_ratio,
    radial_power_spectrum,
    spectral_log_distance,
)
from .fourier import amplitude_loss, amplitude_phase_loss
from .loss import KINDS, SpectralLoss
from .wavelet import wavedec, wavelet_loss

__all__ = [
    "KINDS",
    "SpectralLoss",
    "amplitude_loss",
    "amplitude_phase_loss",
    "fit_power_law_slope",
    "high_frequency_energy_ratio",
    "radial_power_spectrum",
    "spectral_log_distance",
    "wavedec",
    "wavelet_loss",
]
