"""EDM fine-tuning with spectral losses (Tables 1 and 3, Figs. 3-10): config, experiment, figures, Table 1."""

from .experiment import PRESETS, EDMFinetuneConfig, EDMFinetuneExperiment, edm_experiment

__all__ = ["PRESETS", "EDMFinetuneConfig", "EDMFinetuneExperiment", "edm_experiment"]
