"""The checkerboard toy (Figs. 1-2) and the natural-image power spectra: one experiment class, two instances."""

from .experiment import CHECKERBOARD, POWER_SPECTRA, ToyConfig, ToyExperiment

__all__ = ["CHECKERBOARD", "POWER_SPECTRA", "ToyConfig", "ToyExperiment"]
