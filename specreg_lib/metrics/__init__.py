"""Measurements: spectral diagnostics (radially averaged power spectra and their distances), the
checkerboard structure metrics, the one Frechet distance that FID and FAD share, and the feature extractors
that feed it."""

from .audio import fad, mr_stft_distance, ndb, pesq_wb
from .checkerboard import binariness, is_valid, match_error, peak_energy, structure_metrics
from .features import PooledPixels
from .frechet import frechet_distance, gaussian_stats
from .spectra import (
    fit_power_law_slope,
    floored_spectrum,
    high_frequency_energy_ratio,
    radial_power_spectrum,
    spectral_log_distance,
    welch_power_spectrum,
)

__all__ = ["fad", "mr_stft_distance", "ndb", "pesq_wb", "PooledPixels",
           "binariness", "fit_power_law_slope", "floored_spectrum", "frechet_distance", "gaussian_stats",
           "high_frequency_energy_ratio", "is_valid", "match_error", "peak_energy", "radial_power_spectrum",
           "spectral_log_distance", "structure_metrics", "welch_power_spectrum"]
