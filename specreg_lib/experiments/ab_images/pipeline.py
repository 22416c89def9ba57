"""The image study's stages in order: pretrain -> screen -> evaluate (study.py) -> ablate (ablate.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..core.runs import RunResult
from ..core.study import run_stages
from .ablate import run_ablate
from .plan import AbImagesPlan
from .study import run_evaluate, run_pretrain, run_screen


def run_study(plan: AbImagesPlan, root: str | Path, stage: str = "all", say: Callable[[str], None] = print
              ) -> list[RunResult]:
    """Run ``stage`` ("pretrain" | "screen" | "evaluate" | "ablate") or every stage in order ("all")."""
    root = Path(root)
    return run_stages({"pretrain": lambda: run_pretrain(plan, root, say) and [],
                       "screen": lambda: run_screen(plan, root, say),
                       "evaluate": lambda: run_evaluate(plan, root, say),
                       "ablate": lambda: run_ablate(plan, root, say)}, stage)
