"""The image A/B study: Table 1's protocol at CPU scale on the EDM path, offline stand-ins (docs/ab_images.md)."""

from . import command as ab_images_command
from .pipeline import run_study
from .plan import AbImagesPlan, PlanError, ab_images_plan
from .rule import RULE, choose
from .status import ab_status, format_ab_status
from .study import ab_table

__all__ = ["RULE", "AbImagesPlan", "PlanError", "ab_images_command", "ab_images_plan", "ab_status", "ab_table",
           "choose", "format_ab_status", "run_study"]
