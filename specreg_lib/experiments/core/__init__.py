"""The experiment core: typed configs (``config``), the :class:`Experiment` protocol (``protocol``), run folders
with locks, snapshots and resume (``runs``), grids x seeds (``sweep``). It knows no experiment by name."""

from .config import (
    PROFILES,
    NotApplicable,
    Variant,
    apply_overrides,
    check_profile,
    config_hash,
    field_paths,
    from_dict,
    load_config,
    parse_values,
    save_config,
    to_dict,
)
from .protocol import RUNTIME_FIELDS, Experiment, Shorthand
from .runs import RunLocked, RunResult, StepsConflict, run, run_dir, run_state
from .sweep import Sweep, format_status, run_sweep, sweep_status, variant_sweep

__all__ = [
    "PROFILES", "NotApplicable", "Variant", "apply_overrides", "check_profile", "config_hash", "field_paths",
    "from_dict", "load_config", "parse_values", "save_config", "to_dict", "RUNTIME_FIELDS",
    "Experiment", "Shorthand", "RunLocked", "RunResult", "StepsConflict", "run", "run_dir", "run_state", "Sweep",
    "format_status", "run_sweep", "sweep_status", "variant_sweep",
]
