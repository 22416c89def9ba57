"""``specreg table1``: the paper's Table 1 unattended: checkpoint x regularizer x weighting x seed -> fine-tune ->
generate -> FID, every stage skipped when complete; ``--status`` lists what is left and the time it needs.

Examples:

    specreg table1 --profile smoke                               # one tiny cell, stand-in features, seconds
    specreg table1 --profile paper --status                      # what is left, and an estimate of the time
    specreg table1 --profile paper --status --json               # the same as JSON, for scripts
    specreg table1 --profile paper --presets afhqv2-64 --families vp --data ~/afhqv2-64x64.zip
    specreg table1 --profile paper --presets ffhq-64 --families ve  # another process / GPU: a disjoint part

Each FID row is written to <root>/table1/<profile>-<features>/<preset>/<family>/<cell>-<key hash>/fid.json with
everything it depends on (profile, network, sampler, seeds, image count, extractor and its weights' SHA-256,
reference); a result made under another key (a smoke stand-in FID, say) is never reused, skipped or listed. The
paired differences (same training seed and generation seeds as the baseline fine-tune) are printed at the end with
their standard errors, and how far each cell's 8-bit images are from the baseline's. The options and every cell's
config are checked before any work; a bad option, checkpoint, dataset or run-folder file, or a full disk, ends the
command with one line on stderr and exit code 2 (``kit/command.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from ...io import resolve_repo_path
from ...text import parse_seeds
from .table1 import (
    Table1Plan,
    check_plan,
    image_differences,
    paired_differences,
    run_table1,
    table1_frame,
    table1_plan,
)
from .table1_status import format_table1_status, table1_status


def _list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``table1`` options."""
    p.add_argument("--profile", default="smoke", choices=("smoke", "paper"),
                   help="smoke: one tiny cell with stand-in features; paper: FID-50k with Inception (GPU box)")
    p.add_argument("--presets", default=None, metavar="P1,P2",
                   help="afhqv2-64, ffhq-64, cifar10-32 (default: smoke afhqv2-64; paper all three)")
    p.add_argument("--families", default=None, metavar="A1,A2", help="vp and/or ve (default: smoke vp; paper both)")
    p.add_argument("--variants", default=None, metavar="V1,V2",
                   help="amp, amp_phase, haar, bior1.3, and the image peers pixel_l1, dct_multiscale, focal_freq, "
                        "facl (not in the paper; docs/ab_images.md) (default: smoke amp; paper the paper's four)")
    p.add_argument("--weightings", default=None, metavar="W1,W2",
                   help="weighted and/or unweighted (default: smoke unweighted; paper both)")
    p.add_argument("--seeds", default=None, metavar="S1,S2|A-B",
                   help="training seeds, one generation seed set each: comma-separated and/or ranges, e.g. 1,2,3 "
                        "or 1-3 (default: smoke 1,2; paper 1,2,3)")
    p.add_argument("--images", type=int, default=None, help="images per FID set (default: smoke 3; paper 50000)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="the dataset zip/folder in EDM's layout for the fine-tunes (default: data/<dataset>.zip)")
    p.add_argument("--root", default="checkpoints",
                   help="run folders and generated images (relative: from the repository root)")
    p.add_argument("--status", action="store_true",
                   help="print what is left per stage and (preset, family), with a time estimate, then exit")
    p.add_argument("--json", action="store_true", help="print the status as JSON instead of a table")


def check_options(args: argparse.Namespace) -> Table1Plan:
    """The plan the options describe, every cell's config built: a PlanError / OptionError before any work."""
    seeds = None if args.seeds is None else parse_seeds(args.seeds, "--seeds")  # the one seed grammar
    plan = table1_plan(args.profile, _list(args.presets), _list(args.families), _list(args.variants),
                       _list(args.weightings), seeds, args.images)
    if args.data is not None:
        plan = dataclasses.replace(plan, overrides=(*plan.overrides, ("data.path", args.data)))
    check_plan(plan)
    return plan


def execute(args: argparse.Namespace) -> int:
    """Entry point of ``specreg table1``; returns the exit code (errors: one line and 2, by ``kit/command.py``)."""
    plan = check_options(args)
    root = resolve_repo_path(args.root)
    status = table1_status(plan, root)
    print(json.dumps(status, indent=1) if args.json else format_table1_status(status))
    if args.status:
        return 0
    rows = run_table1(plan, root)
    print(table1_frame(rows).to_string(index=False))
    for d in paired_differences(rows):
        mark = "*" if d["distinguishable"] else " "
        se = "n/a" if d["se"] is None else f"{d['se']:.3g}"
        print(f"{mark} {d['preset']} {d['family']} {d['variant']} {d['weighting'] or ''}: "
              f"diff {d['mean_diff']:+.4g} +- {se} (n={d['n']})")
    for d in image_differences(plan, root):
        print(f"  images {_name(d)} vs {d['against']}: {_image_text(d)}")
    return 0


def _name(d: dict[str, Any]) -> str:
    return f"{d['preset']} {d['family']} {d['variant']}{'_' + d['weighting'] if d['weighting'] else ''} " \
           f"set{d['seed_index']}"


def _image_text(d: dict[str, Any]) -> str:
    """One row of ``image_differences`` in words."""
    if d["values_differing"]:
        return f"{d['values_differing']} of {d['values']} 8-bit values differ (by up to {d['max_8bit_diff']}/255)"
    return (f"the same 8-bit images; float outputs differ by up to {d['max_float_diff']:.3g} "
            f"(one 8-bit level is {2 / 255:.3g})")

