"""The experiment layer: typed configs, the experiment protocol, run folders and sweeps.

Every experiment (the checkerboard toy, the natural-image power spectra, and the EDM and DiffWave fine-tuning
that build on them) is an :class:`Experiment` with one typed config; :func:`run` trains/resumes/reuses one run
in its own folder, :class:`Sweep` + :func:`run_sweep` a grid of them times seeds.
"""

from types import ModuleType

from .ab_audio import ab_audio_command
from .ab_images import ab_images_command
from .audio import DIFFWAVE, AudioConfig, AudioExperiment
from .core import (
    PROFILES,
    RUNTIME_FIELDS,
    Experiment,
    NotApplicable,
    RunLocked,
    RunResult,
    Shorthand,
    StepsConflict,
    Sweep,
    Variant,
    apply_overrides,
    check_profile,
    config_hash,
    field_paths,
    format_status,
    from_dict,
    load_config,
    parse_values,
    run,
    run_dir,
    run_state,
    run_sweep,
    save_config,
    sweep_status,
    to_dict,
    variant_sweep,
)
from .edm import PRESETS as EDM_PRESETS
from .edm import EDMFinetuneConfig, EDMFinetuneExperiment, edm_experiment, table1_command
from .toy import CHECKERBOARD, POWER_SPECTRA, ToyConfig, ToyExperiment
from .toy import front as toy_front_command

# The registry every door reads: experiment name -> Experiment (the kit knows them only from here)
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (CHECKERBOARD, POWER_SPECTRA, DIFFWAVE,
                                                           *EDM_PRESETS.values())}
# Doors an experiment adds to the ``specreg`` CLI beyond the sweep door: name -> (module with add_arguments /
# execute, one-line help). The kit lists them without knowing what they are.
COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "table1": (table1_command, "the paper's Table 1: fine-tune -> generate -> FID per cell, resumable; --status "
                               "shows what is left"),
    "ab-audio": (ab_audio_command, "Table 2's protocol at CPU scale: pretrain -> screen lambdas on seed 0 -> 5 "
                                   "evaluation seeds, paired differences; resumable; --status shows what is left"),
    "ab-images": (ab_images_command, "Table 1's protocol at CPU scale on offline stand-ins: pretrain -> screen "
                                     "strengths on seed 0 -> 3 evaluation seeds, paired differences, peers; "
                                     "resumable; --status"),
    "toy-front": (toy_front_command, "the checkerboard toy's front: log distance against valid checkerboards across "
                                     "lambda for each kind and peer, 3 seeds at the rule's choice; resumable; "
                                     "--status"),
}

__all__ = [
    "AudioConfig", "AudioExperiment", "CHECKERBOARD", "DIFFWAVE", "EDM_PRESETS", "EDMFinetuneConfig",
    "EDMFinetuneExperiment", "COMMANDS", "EXPERIMENTS", "edm_experiment", "POWER_SPECTRA", "PROFILES",
    "RUNTIME_FIELDS", "Experiment", "NotApplicable",
    "RunLocked", "RunResult", "Shorthand", "StepsConflict", "Sweep", "ToyConfig", "ToyExperiment", "Variant",
    "apply_overrides", "check_profile", "config_hash", "field_paths", "format_status", "from_dict", "load_config",
    "parse_values",
    "run", "run_dir", "run_state", "run_sweep", "save_config", "sweep_status", "to_dict", "variant_sweep",
]
