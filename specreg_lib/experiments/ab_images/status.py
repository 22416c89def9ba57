"""What is done and left of the image A/B study, per stage, with an estimate from this plan's own measured times
(``core.study``: steps left x measured seconds per step; evaluations left x measured seconds per evaluation of
that stand-in). Runs whose settings are not known yet (the regularized screen runs before calibration, the
evaluation runs before the rule's choice) are counted as pending. The status only reads: it never writes a file,
takes a lock or trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...io import read_json
from ..core.runs import run_state
from ..core.study import count_stage, estimate, format_stages, median, total_line
from .ablate import ABLATE_DATASET, ablation_configs
from .experiment import AB_IMAGES
from .plan import BASELINE, STAGES, AbImagesPlan, Point, finetune_config, pretrain_config, regularized, study_dir
from .study import choice, evaluate_configs, lambdas_of, pretrain_done, screen_points


def ab_status(plan: AbImagesPlan, root: str | Path) -> dict[str, Any]:
    """Per stage: runs and evaluations done / left, steps left, seconds per step and per evaluation measured on
    this plan, an estimate (None when a needed measurement is missing), and what is pending. Writes nothing."""
    root = Path(root)
    n_reg = len(regularized(plan))
    screen, evaluate, pend = [], [], {"screen": {}, "evaluate": {}}
    for d in plan.datasets:
        cfg = finetune_config(plan, root, Point(d, BASELINE, None, None, None, plan.screen_seed))
        steps = AB_IMAGES.train_config(cfg).steps
        lambdas = lambdas_of(plan, root, d)
        screen += [finetune_config(plan, root, p) for p in screen_points(plan, d, lambdas)]
        if lambdas is None:
            pend["screen"][d] = (n_reg * len(plan.strengths), steps)
        configs = evaluate_configs(plan, root, d, write=False)
        if configs is None:
            pend["evaluate"][d] = (len(plan.eval_seeds) * (1 + n_reg), steps)
        evaluate += configs or []

    def count(configs: list[Any], stage: str) -> dict[str, Any]:
        p = pend.get(stage, {})
        return count_stage(AB_IMAGES, root, configs, sum(n for n, _ in p.values()), sum(n * s for n, s in
                           p.values()), {d: n for d, (n, _) in p.items()}, lambda cfg: cfg.data.dataset)

    ablation = ablation_configs(plan, root, write=False) if ABLATE_DATASET in plan.datasets else {}
    pretrain = [pretrain_config(plan, root, d) for d in plan.datasets]  # less those installed from a committed copy
    pretrain = [c for c, d in zip(pretrain, plan.datasets, strict=True) if not pretrain_done(plan, root, d)
                or run_state(AB_IMAGES, c, root)[0] == "done"]
    stages = {"pretrain": count(pretrain, "pretrain"),
              "screen": count(screen, "screen"), "evaluate": count(evaluate, "evaluate"),
              "ablate": count(list((ablation or {}).values()), "ablate")}
    timing = [read_json(p) for p in sorted((study_dir(plan, root) / "timings").glob("*.json"))]
    per_eval = {d: median([t["eval_seconds"] for t in timing if t.get("dataset") == d]) for d in plan.datasets}
    ft_rate = median(stages["screen"]["rates"] + stages["evaluate"]["rates"])
    total = estimate(stages, per_eval, lambda name, st: median(st["rates"]) if name == "pretrain" else ft_rate)
    if ablation is None:  # its rows follow from the evaluation of ABLATE_DATASET: not known yet, no estimate
        stages["ablate"]["eta_seconds"], total = None, None
        stages["ablate"]["unmeasured"] = [f"its rows are known after the evaluation of {ABLATE_DATASET}"]
    for name in STAGES:
        p = pend.get(name, {})
        why = {"screen": "regularized runs (lambdas from the calibration after pretraining)",
               "evaluate": "runs (strengths chosen by the rule after the screen)"}.get(name, "")
        stages[name]["pending"] = ", ".join(f"{d}: {n} {why}" for d, (n, _) in p.items())
    if ablation is None:
        stages["ablate"]["pending"] = (f"up to 14 runs per evaluation seed on the best and worst kinds of "
                                       f"{ABLATE_DATASET} (docs/ab_images.md, Ablation)")
    chosen = {}
    for d in plan.datasets:
        record = choice(plan, root, d, write=False)
        if record is not None:
            chosen[d] = {k: v["strength"] for k, v in record["chosen"].items()}
    return {"profile": plan.profile, "datasets": list(plan.datasets), "stages": stages,
            "seconds_per_evaluation": per_eval, "chosen": chosen, "eta_seconds": total}


def format_ab_status(status: dict[str, Any]) -> str:
    """A plain-text table of :func:`ab_status`."""
    lines = format_stages(f"A/B image study, profile {status['profile']} (stand-ins {', '.join(status['datasets'])})",
                          status["stages"], STAGES)
    for d, chosen in status["chosen"].items():
        lines.append(f"chosen strengths ({d}): " + ", ".join(f"{k} {v:g}" for k, v in chosen.items()))
    lines.append(total_line(status["stages"]))
    return "\n".join(lines)
