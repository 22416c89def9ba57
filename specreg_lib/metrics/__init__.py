"""Measurements: spectral diagnostics (radially averaged power spectra and their distances), the
checkerboard structure metrics, the one Frechet distance that FID and FAD share, the feature extractors
that feed it, the image study's metrics (high-frequency ratios, a fixed feature space, the copy check, noise
floors), and the audio metrics of Table 2 with their noise floors (pitch and voicing among them)."""

from .audio import (
    distribution_metrics,
    fad,
    half_sample_delay,
    mr_stft_distance,
    ndb,
    noise_floors,
    paired_metrics,
    pesq_wb,
)
from .checkerboard import binariness, is_valid, match_error, peak_energy, structure_metrics
from .features import PooledPixels
from .frechet import frechet_distance, gaussian_stats
from .image_quality import (
    CopyCheck,
    RandomConvFeatures,
    feature_distance,
    hf_power_ratio,
    laplacian_energy,
    laplacian_energy_ratio,
    nearest_neighbour_copies,
    noise_floor,
)
from .pitch import f0_rmse_cents, pitch_errors, track_f0, vuv_error
from .spectra import (
    fit_power_law_slope,
    floored_spectrum,
    high_frequency_energy_ratio,
    radial_power_spectrum,
    spectral_log_distance,
    welch_power_spectrum,
)

__all__ = ["distribution_metrics", "fad", "half_sample_delay", "mr_stft_distance", "ndb", "noise_floors",
           "paired_metrics", "pesq_wb", "f0_rmse_cents", "pitch_errors", "track_f0", "vuv_error", "PooledPixels",
           "binariness", "fit_power_law_slope", "floored_spectrum", "frechet_distance", "gaussian_stats",
           "high_frequency_energy_ratio", "is_valid", "match_error", "peak_energy", "radial_power_spectrum",
           "spectral_log_distance", "structure_metrics", "welch_power_spectrum", "CopyCheck", "RandomConvFeatures",
           "feature_distance", "hf_power_ratio", "laplacian_energy", "laplacian_energy_ratio",
           "nearest_neighbour_copies", "noise_floor"]
