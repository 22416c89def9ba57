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

import numpy as np

from ...io import read_json
from ..audio.experiment import DIFFWAVE
from ..core.runs import checkpoint_step, results_dir, run_dir, run_state
from ..edm.table1_status import format_duration
from .plan import (
    BASELINE,
    STAGES,
    AbAudioPlan,
    eval_points,
    finetune_config,
    pretrain_config,
    screen_points,
    study_dir,
)
from .study import choice, peer_lambdas

NO_MEASUREMENT = "no measurement of this configuration yet"


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _count(root: Path, configs: list[Any], pending_runs: int, pending_steps: int,
           pending_evals: dict[str, int]) -> dict[str, Any]:
    """One stage: runs (trainings) trained / left, evaluations done / left per schedule, steps left, and the
    measured seconds per step of its runs."""
    runs: dict[str, tuple[int, int]] = {}  # run hash -> (steps, steps left)
    evals_left = dict(pending_evals)
    done, rates = 0, []
    for cfg in configs:
        state, _ = run_state(DIFFWAVE, cfg, root)
        steps = cfg.train.steps
        if state in ("done", "trained"):
            left = 0
        else:
            at = checkpoint_step(run_dir(DIFFWAVE, cfg, root) / "checkpoint.pt") if state == "partial" else None
            left = steps - (at or 0)
        key = DIFFWAVE.run_hash(cfg)
        runs[key] = (steps, min(left, runs.get(key, (steps, left))[1]))
        if state == "done":
            done += 1
            metrics = read_json(results_dir(DIFFWAVE, cfg, root) / "metrics.json")
            if metrics.get("seconds_per_step"):
                rates.append(metrics["seconds_per_step"])
        else:
            evals_left[cfg.sample.schedule] = evals_left.get(cfg.sample.schedule, 0) + 1
    return {"runs": len(runs) + pending_runs, "runs_left": sum(1 for _, left in runs.values() if left) + pending_runs,
            "evaluations": len(configs) + sum(pending_evals.values()), "evaluations_done": done,
            "steps_left": sum(left for _, left in runs.values()) + pending_steps, "evals_left": evals_left,
            "rates": rates}


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
    stages = {
        "pretrain": _count(root, [pretrain_config(plan)], 0, 0, {}),
        "screen": _count(root, screen, n_peer, n_peer * ft_steps, {"fast": n_peer} if n_peer else {}),
        "evaluate": _count(root, evaluate or [], 0 if evaluate else n_eval, 0 if evaluate else n_eval * ft_steps,
                           {} if evaluate else {s: n_eval for s in plan.schedules}),
    }
    timing = [read_json(p) for p in sorted((study_dir(plan, root) / "timings").glob("*.json"))]
    per_eval = {s: _median([t["eval_seconds"] for t in timing if t.get("schedule") == s]) for s in plan.schedules}
    ft_rate = _median(stages["screen"]["rates"] + stages["evaluate"]["rates"])
    for name, st in stages.items():
        rate = _median(st.pop("rates")) if name == "pretrain" else ft_rate
        missing = ["training"] if st["steps_left"] and rate is None else []
        missing += [f"{s} evaluation" for s, n in st["evals_left"].items() if n and per_eval.get(s) is None]
        st["seconds_per_step"] = rate
        st["eta_seconds"] = None if missing else (st["steps_left"] * (rate or 0.0) + sum(
            n * (per_eval.get(s) or 0.0) for s, n in st["evals_left"].items()))
        st["unmeasured"] = missing
    st = stages["screen"]
    st["pending"] = f"{n_peer} peer runs (lambdas from the calibration after pretraining)" if n_peer else ""
    stages["evaluate"]["pending"] = "" if evaluate else f"{n_eval} runs (lambdas chosen by the rule after the screen)"
    stages["pretrain"]["pending"] = ""
    etas = [s["eta_seconds"] for s in stages.values()]
    return {"profile": plan.profile, "corpus": plan.corpus, "stages": stages, "seconds_per_evaluation": per_eval,
            "chosen": None if record is None else {k: v["lambda"] for k, v in record["chosen"].items()},
            "choice_written": (study_dir(plan, root) / "choice.json").is_file(),
            "eta_seconds": None if None in etas else float(sum(etas))}


def _baseline_point(plan: AbAudioPlan) -> Any:
    from .plan import Point

    return Point(BASELINE, None, "sum", plan.screen_seed)


def format_ab_status(status: dict[str, Any]) -> str:
    """A plain-text table of :func:`ab_status`."""
    head = ["stage", "runs trained/total", "evaluations done/total", "steps left", "s/step", "ETA"]
    rows = []
    for name in STAGES:
        st = status["stages"][name]
        eta = format_duration(st["eta_seconds"]) if st["eta_seconds"] is not None else \
            f"{NO_MEASUREMENT} ({', '.join(st['unmeasured'])})"
        rate = "-" if st["seconds_per_step"] is None else f"{st['seconds_per_step']:.3g}"
        rows.append([name, f"{st['runs'] - st['runs_left']} / {st['runs']}",
                     f"{st['evaluations_done']} / {st['evaluations']}", str(st["steps_left"]), rate, eta])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = [f"A/B audio study, profile {status['profile']} (corpus {status['corpus']})",
             "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += [f"pending in {n}: {status['stages'][n]['pending']}" for n in STAGES if status["stages"][n]["pending"]]
    if status["chosen"]:
        lines.append("chosen lambdas: " + ", ".join(f"{k} {v:g}" for k, v in status["chosen"].items()) + (
            "" if status["choice_written"] else " (computed from the complete screen; the evaluate stage writes "
            "choice.json)"))
    eta = status["eta_seconds"]
    lines.append(f"all stages: {NO_MEASUREMENT if eta is None else format_duration(eta)} left (from this plan's "
                 "own measured step and evaluation times)")
    return "\n".join(lines)
