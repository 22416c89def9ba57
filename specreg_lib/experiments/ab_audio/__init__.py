"""The audio A/B study: Table 2's protocol at CPU scale on the DiffWave experiment (docs/ab_audio.md)."""

from . import command as ab_audio_command
from .plan import AbAudioPlan, PlanError, ab_audio_plan
from .rule import RULE, choose
from .status import ab_status, format_ab_status
from .study import ab_table, run_study

__all__ = ["RULE", "AbAudioPlan", "PlanError", "ab_audio_command", "ab_audio_plan", "ab_status", "ab_table",
           "choose", "format_ab_status", "run_study"]
