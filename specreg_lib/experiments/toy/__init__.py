"""The checkerboard toy (Figs. 1-2) and the natural-image power spectra: one experiment class, two instances."""

from .experiment import CHECKERBOARD, POWER_SPECTRA, ToyConfig, ToyExperiment
from .front import FrontPlan, front_figure, front_plan, front_status, front_table, run_front

__all__ = ["CHECKERBOARD", "POWER_SPECTRA", "FrontPlan", "ToyConfig", "ToyExperiment", "front_figure", "front_plan",
           "front_status", "front_table", "run_front"]
