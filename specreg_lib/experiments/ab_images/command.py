"""``specreg ab-images``: Table 1's protocol at CPU scale on two offline stand-ins (pretrain -> screen -> evaluate ->
ablate), resumable; ``--status`` shows what is done and left per stage with an estimate from measured times.

Examples:

    specreg ab-images --profile smoke                  # every stage on a tiny net, seconds
    specreg ab-images --profile cpu --status           # what is done and left, and an estimate
    specreg ab-images --profile cpu --stage pretrain   # one stage (each stage needs the one before)
    specreg ab-images --profile cpu --dataset photos   # one stand-in only
    nohup specreg ab-images --profile cpu > logs/ab_images.log 2>&1 &   # in the background; again for a 2nd core

Every run lives in its own folder under <root>/ab_images_edm/ and resumes from its last checkpoint; a finished run
is only re-read. The rule that picks each variant's strength on seed 0 is in docs/ab_images.md; the choice is
written to <root>/ab_images/<profile>/choice-<dataset>.json before any evaluation seed trains. A bad option, a
stage asked for before the one it needs, or a full disk ends the command with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json

from ...io import resolve_repo_path
from ..core.study import add_study_arguments
from .experiment import AB_IMAGES, STANDINS
from .pipeline import run_study
from .plan import STAGES, ab_images_plan, finetune_config, pretrain_config, screen_points
from .status import ab_status, format_ab_status
from .study import ab_table, evaluate_configs, lambdas_of


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``ab-images`` options."""
    add_study_arguments(p, "docs/ab_images.md", STAGES, archive=False)  # its tables need the runs' spectra
    p.add_argument("--dataset", default="all", choices=(*STANDINS, "all"), help="one stand-in, or both")


def execute(args: argparse.Namespace) -> int:
    """Entry point of ``specreg ab-images``; returns the exit code (errors: one line and 2, by ``kit/command.py``)."""
    changes = {} if args.dataset == "all" else {"datasets": (args.dataset,)}
    plan = ab_images_plan(args.profile, **changes)
    root = resolve_repo_path(args.root)
    for d in plan.datasets:
        pretrain_config(plan, root, d)  # every config value is checked before any work
    status = ab_status(plan, root)
    print(json.dumps(status, indent=1) if args.json else format_ab_status(status))
    if args.status:
        return 0
    if args.dry_run:
        for d in plan.datasets:
            cfg = pretrain_config(plan, root, d)
            print(f"pretrain: {d} {AB_IMAGES.label(cfg)}, {AB_IMAGES.train_config(cfg).steps} steps")
            lambdas = lambdas_of(plan, root, d)
            for p in screen_points(plan, d, lambdas):
                print(f"screen: {d} {AB_IMAGES.label(finetune_config(plan, root, p))} (strength {p.strength})")
            if lambdas is None:
                print(f"screen: {d} + the regularized runs once the pretrained net is calibrated")
            configs = evaluate_configs(plan, root, d, write=False)
            print(f"evaluate: {d} " + ("the runs are known once the screen is complete (the rule chooses them)"
                                       if configs is None else f"{len(configs)} runs"))
        return 0
    run_study(plan, root, args.stage, say=lambda line: print(line, flush=True))
    if args.stage in ("evaluate", "all"):
        for d in plan.datasets:
            table = ab_table(plan, root, d)
            print(table.to_string(index=False) if len(table) else f"({d}: no finished evaluation runs yet)")
    return 0
