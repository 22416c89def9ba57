"""``specreg ab-audio``: Table 2's protocol at CPU scale (pretrain -> screen -> evaluate), resumable; ``--status``
shows what is done and left per stage with an estimate from measured times.

Examples:

    specreg ab-audio --profile smoke                  # every stage on a tiny net, seconds
    specreg ab-audio --profile cpu --status           # what is done and left, and an estimate
    specreg ab-audio --profile cpu --stage pretrain   # one stage (each stage needs the one before)
    specreg ab-audio --profile cpu --dry-run          # the runs each stage would train, nothing trained
    nohup specreg ab-audio --profile cpu > logs/ab_audio.log 2>&1 &   # in the background; again for a 2nd core

Every run lives in its own folder under <root>/diffwave/ and resumes from its last checkpoint; a finished run is
only re-read, so killing the command and starting it again loses at most the steps since the last checkpoint. The
rule that picks each kind's lambda on seed 0 is in docs/ab_audio.md; the choice is written to
<root>/ab_audio/<profile>/choice.json before any evaluation seed trains. A bad option, a stage asked for before the
one it needs, or a full disk ends the command with one line on stderr and exit code 2 (``kit/command.py``).
"""

from __future__ import annotations

import argparse
import json

from ...io import resolve_repo_path
from ..core.study import add_study_arguments
from .plan import AB_AUDIO, STAGES, ab_audio_plan, finetune_config, pretrain_config, screen_points
from .status import ab_status, format_ab_status
from .study import ab_table, archive, evaluate_configs, peer_lambdas, run_study


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``ab-audio`` options."""
    add_study_arguments(p, "docs/ab_audio.md", STAGES)


def execute(args: argparse.Namespace) -> int:
    """Entry point of ``specreg ab-audio``; returns the exit code (errors: one line and 2, by ``kit/command.py``)."""
    plan = ab_audio_plan(args.profile)
    root = resolve_repo_path(args.root)
    pretrain_config(plan)  # every config value is checked before any work
    status = ab_status(plan, root)
    print(json.dumps(status, indent=1) if args.json else format_ab_status(status))
    if args.status:
        return 0
    if args.archive:
        archive(plan, root, say=lambda line: print(line, flush=True))
        return 0
    if args.dry_run:
        _dry_run(plan, root)
        return 0
    run_study(plan, root, args.stage, say=lambda line: print(line, flush=True))
    if args.stage in ("evaluate", "all"):
        table = ab_table(plan, root)
        print(table.to_string(index=False) if len(table) else "(no finished evaluation runs yet)")
    return 0


def _dry_run(plan, root) -> None:
    """The runs of each stage that are known now (the peers after calibration, evaluation after the choice)."""
    print(f"pretrain: {AB_AUDIO.label(pretrain_config(plan))}, {pretrain_config(plan).train.steps} steps")
    peers = peer_lambdas(plan, root)
    for p in screen_points(plan, peers):
        cfg = finetune_config(plan, root, p)
        print(f"screen: {AB_AUDIO.label(cfg)} bins={p.bins} ({cfg.train.steps} steps, {p.schedule})")
    if peers is None:
        print(f"screen: + {len(plan.peers) * len(plan.lambdas)} peer runs once the pretrained net is calibrated")
    configs = evaluate_configs(plan, root, write=False)
    if configs is None:
        print("evaluate: the runs are known once the screen is complete (the rule chooses their lambdas)")
    for cfg in configs or []:
        print(f"evaluate: {AB_AUDIO.label(cfg)} ({cfg.train.steps} steps, {cfg.sample.schedule})")
