"""What is done and left of the audio A/B study, per stage, with an estimate from this plan's own measured times.

Training time: steps left x the median seconds per step of the stage's finished runs (the pretraining run for
``pretrain``; the fine-tunes for ``screen`` and ``evaluate``). Evaluation time: evaluations left x the median
measured seconds of one evaluation with that schedule (``timings/``). A stage with work left and no measurement
has no estimate, and says so; nothing is guessed from another configuration. Runs whose settings are not known
yet (the peers before calibration, the evaluation runs before the rule's choice) are counted as pending.

The status only reads: it never writes a file, takes a lock or trains. Once the screen is complete and before the
evaluate stage has written choice.json, it computes the rule's choice (and the noise floors it needs) in memory;
the stages write them (study.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...io import read_json
from ..core.runs import run_state
from ..core.study import count_stage, estimate, format_stages, median, total_line
from .plan import (
    AB_AUDIO,
    BASELINE,
    STAGES,
    AbAudioPlan,
    eval_points,
    finetune_config,
    pretrain_config,
    screen_points,
    study_dir,
)
from .study import choice, peer_lambdas, pretrain_done


def ab_status(plan: AbAudioPlan, root: str | Path) -> dict[str, Any]:
    """Per stage: runs and evaluations done / left, steps left, seconds per step and per evaluation measured on
    this plan, an estimate (None when a needed measurement is missing), and what is pending. Writes nothing."""
    root = Path(root)
    ft_steps = finetune_config(plan, root, _baseline_point(plan)).train.steps
    peers = peer_lambdas(plan, root)
    n_peer = 0 if peers is not None else len(plan.peers) * len(plan.lambdas)
    screen = [finetune_config(plan, root, p) for p in screen_points(plan, peers)]
    record = choice(plan, root, write=False)  # choice.json, or the same choice computed in memory
    evaluate = None if record is None else [finetune_config(plan, root, p) for p in eval_points(plan, {
        k: v["lambda"] for k, v in record["chosen"].items()})]
    n_eval = len(plan.eval_seeds) * (1 + len(plan.kinds) + len(plan.peers))
    def count(configs: list[Any], runs: int, steps: int, evals: dict[str, int]) -> dict[str, Any]:
        return count_stage(AB_AUDIO, root, configs, runs, steps, evals, lambda cfg: cfg.sample.schedule)

    stages = {
        # a pretrained net installed from the repository's committed copy has no run folder: nothing left
        "pretrain": count([] if pretrain_done(plan, root) and run_state(AB_AUDIO, pretrain_config(plan), root)[0]
                          != "done" else [pretrain_config(plan)], 0, 0, {}),
        "screen": count(screen, n_peer, n_peer * ft_steps, {"fast": n_peer} if n_peer else {}),
        "evaluate": count(evaluate or [], 0 if evaluate else n_eval, 0 if evaluate else n_eval * ft_steps,
                          {} if evaluate else {s: n_eval for s in plan.schedules}),
    }
    timing = [read_json(p) for p in sorted((study_dir(plan, root) / "timings").glob("*.json"))]
    per_eval = {s: median([t["eval_seconds"] for t in timing if t.get("schedule") == s]) for s in plan.schedules}
    ft_rate = median(stages["screen"]["rates"] + stages["evaluate"]["rates"])
    total = estimate(stages, per_eval, lambda name, st: median(st["rates"]) if name == "pretrain" else ft_rate)
    st = stages["screen"]
    st["pending"] = f"{n_peer} peer runs (lambdas from the calibration after pretraining)" if n_peer else ""
    stages["evaluate"]["pending"] = "" if evaluate else f"{n_eval} runs (lambdas chosen by the rule after the screen)"
    stages["pretrain"]["pending"] = ""
    return {"profile": plan.profile, "corpus": plan.corpus, "stages": stages, "seconds_per_evaluation": per_eval,
            "chosen": None if record is None else {k: v["lambda"] for k, v in record["chosen"].items()},
            "choice_written": (study_dir(plan, root) / "choice.json").is_file(),
            "eta_seconds": total}


def _baseline_point(plan: AbAudioPlan) -> Any:
    from .plan import Point

    return Point(BASELINE, None, "sum", plan.screen_seed)


def format_ab_status(status: dict[str, Any]) -> str:
    """A plain-text table of :func:`ab_status`."""
    lines = format_stages(f"A/B audio study, profile {status['profile']} (corpus {status['corpus']})",
                          status["stages"], STAGES)
    if status["chosen"]:
        lines.append("chosen lambdas: " + ", ".join(f"{k} {v:g}" for k, v in status["chosen"].items()) + (
            "" if status["choice_written"] else " (computed from the complete screen; the evaluate stage writes "
            "choice.json)"))
    lines.append(total_line(status["stages"]))
    return "\n".join(lines)
