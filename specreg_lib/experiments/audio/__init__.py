"""DiffWave fine-tuning with spectral losses (Table 2): config, experiment, figures."""

from .experiment import DIFFWAVE, AudioConfig, AudioExperiment

__all__ = ["DIFFWAVE", "AudioConfig", "AudioExperiment"]
