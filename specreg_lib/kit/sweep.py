"""``specreg sweep EXPERIMENT``: run a grid of an experiment's config fields times seeds, resumably.

Examples (run folders go to ``checkpoints/<experiment>/`` under the repository root by default):

    specreg sweep checkerboard --profile cpu --grid regularizer=baseline,amp_phase --seeds 1,2,3 --dry-run
    specreg sweep checkerboard --profile cpu --grid lambda_spec=0.3,1,3 --grid weighting=alpha_bar,min_snr \\
        --seeds 0
    nohup specreg sweep power_spectra --profile cpu --grid regularizer=baseline,amp,amp_phase,haar,bior1.3 &
    torchrun --nproc_per_node 2 -m specreg_lib.kit.sweep checkerboard --profile paper --seeds 1

A killed sweep resumes where it stopped (each run from its last checkpoint); finished runs are only re-read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..experiments import EXPERIMENTS, PROFILES, RunLocked, StepsConflict, Sweep, field_paths, format_status
from ..experiments.core.config import get_path, parse_set_options, parse_values
from ..experiments.core.sweep import run_sweep, sweep_status
from ..training.distributed import init_distributed, is_main
from .paths import resolve_repo_path

DEFAULT_ROOT = "checkpoints"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``sweep`` options."""
    p.add_argument("experiment", nargs="?", choices=sorted(EXPERIMENTS),
                   help="which experiment (leave out with --list to see them)")
    p.add_argument("--profile", default="smoke", choices=PROFILES,
                   help="the named preset the grid starts from (default: smoke)")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                   help="a grid axis: a config field (dotted path like regularizer.lambda_spec, or a unique leaf "
                        "name like lambda_spec) and its comma-separated values; tuples as [2,4],[2]; "
                        "regularizer takes variant names (baseline, amp, ...); repeatable")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a single-value override of a config field for every run (e.g. steps=3000); repeatable")
    p.add_argument("--seeds", default=None, metavar="S1,S2",
                   help="comma-separated training seeds (default: the experiment's seeds for the profile)")
    p.add_argument("--root", default=DEFAULT_ROOT,
                   help=f"where run folders go (relative: from the repository root; default: {DEFAULT_ROOT})")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state (done/partial/...), "
                                                          "then exit without training")
    p.add_argument("--wait", action="store_true",
                   help="if another process holds a run's lock, wait for it instead of stopping")
    p.add_argument("--skip-locked", action="store_true",
                   help="put off runs another process holds and wait for them at the end, so several workers "
                        "(e.g. one per core) can share one sweep")
    p.add_argument("--fields", action="store_true", help="list the experiment's config fields, their types and "
                                                         "the profile's values, then exit")
    p.add_argument("--list", action="store_true", help="list the experiments, then exit")


def build_sweep(args: argparse.Namespace) -> Sweep:
    """The Sweep the arguments describe; ValueError/KeyError with a clear message on bad input."""
    exp = EXPERIMENTS[args.experiment]
    cls = exp.config_class
    grid: dict[str, list] = {}
    for item in args.grid:
        key, sep, text = item.partition("=")
        if not sep or not text:
            raise ValueError(f"--grid {item!r} is not FIELD=V1,V2")
        path, values = parse_values(cls, key.strip(), text, exp.variants)
        grid[path] = values
    overrides = parse_set_options(cls, args.set, exp.variants)
    if "regularizer" not in grid and "regularizer" not in overrides and exp.default_variants:
        grid = {"regularizer": [exp.variants[v] for v in exp.default_variants], **grid}
    if args.seeds is not None:
        try:
            seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
        except ValueError:
            raise ValueError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    else:
        seeds = exp.default_seeds.get(args.profile, (1,))
    return Sweep(exp, args.profile, overrides, grid, seeds)


def _fields(args: argparse.Namespace) -> int:
    exp = EXPERIMENTS[args.experiment]
    cfg = exp.config(args.profile)
    for path, hint in field_paths(exp.config_class).items():
        value = get_path(cfg, path)
        if not hasattr(value, "__dataclass_fields__") or path == "regularizer":
            print(f"{path:34s} {str(hint):40s} {value!r}")
    print(f"\nregularizer variants: {', '.join(exp.variants)}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point shared by ``specreg sweep`` and ``python -m specreg_lib.kit.sweep``; returns the exit code."""
    if args.list or not args.experiment:
        for name, exp in EXPERIMENTS.items():
            print(f"{name:16s} {type(exp).__name__}: profiles {', '.join(exp.profiles)}; "
                  f"variants {', '.join(exp.variants)}")
        return 0 if args.list else 2
    if args.fields:
        return _fields(args)
    try:
        sweep = build_sweep(args)
    except (ValueError, KeyError, TypeError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        return 2
    root = resolve_repo_path(args.root)
    init_distributed()  # under torchrun; a no-op otherwise. Before any run folder is named: they depend
    # on the number of shards
    say = print if is_main() else (lambda *a, **k: None)
    say(f"{sweep.experiment.name}, profile {sweep.profile}: {len(sweep.configs())} runs under "
          f"{root / sweep.experiment.name}")
    say(format_status(sweep_status(sweep, root)))
    if args.dry_run:
        return 0
    try:
        results = run_sweep(sweep, root, wait=args.wait, skip_locked=args.skip_locked)
    except (RunLocked, StepsConflict) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if is_main():
        print("\n" + format_status(sweep_status(sweep, root)))
        _print_results(sweep, results)
    return 0


def _print_results(sweep: Sweep, results: list) -> None:
    keys = [k for k in ("log_distance", "valid_fraction", "binariness", "seconds_per_step") if k in
            results[0].metrics] if results else []
    print("\n" + "  ".join(["run".ljust(40), *(k.rjust(14) for k in keys)]))
    for r in results:
        print("  ".join([Path(r.run_dir).name[:40].ljust(40), *(f"{r.metrics[k]:14.4g}" for k in keys)]))


def main(argv: list[str] | None = None) -> int:
    """``python -m specreg_lib.kit.sweep``."""
    from .cli import standalone

    return standalone("sweep", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
