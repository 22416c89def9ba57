"""``specreg sweep EXPERIMENT``: train a grid of an experiment's settings times seeds, resumably, then evaluate.

The one door for training runs, for every experiment of the registry (``--list`` prints them with their profiles,
variants and options). Beside the kit's own options, each experiment declares shorthands for its config fields
(``Experiment.shorthands``, e.g. ``--steps``; comma lists on those that are grid axes); ``--grid`` and ``--set``
reach every other field. ``specreg finetune`` is this door under ``--task``/``--preset`` names.

Examples (EXPERIMENT as ``--list`` names it; run folders go to ``checkpoints/<experiment>/`` under the repository
root by default):

    specreg sweep --list
    specreg sweep EXPERIMENT --profile cpu --fields
    specreg sweep EXPERIMENT --profile cpu --regularizer baseline,amp_phase --seeds 1-3 --dry-run
    specreg sweep EXPERIMENT --profile cpu --regularizer amp_phase --lambda_spec 0.3,1,3 --seeds 0
    specreg sweep EXPERIMENT --profile cpu --grid regularizer.weighting=alpha_bar,min_snr --set train.lr=5e-4
    nohup specreg sweep EXPERIMENT --profile cpu --skip-locked &      # again in a second shell: two workers
    specreg sweep EXPERIMENT --profile paper --resume                 # continue, never start anew
    torchrun --nproc_per_node 2 -m specreg_lib.kit.sweep EXPERIMENT --profile paper --seeds 1

A variant (``--regularizer``) names L_S only: every regularized run takes lambda_spec and the weighting from the
profile, ``--set`` or an axis of their own, and ``--dry-run`` shows the values each run will use. lambda_spec is
spelled ``--lambda_spec`` (alias ``--lambda``), and ``lambda_spec`` or ``regularizer.lambda_spec`` in --grid/--set.
A killed sweep resumes where it stopped (each run from its last checkpoint); finished runs are only re-read.
Every expected failure (a bad option or config value, a run folder another process holds, a bad checkpoint, dataset
or run-folder file, a full disk) ends the command with one line on stderr naming the option or file and what to
do, exit code 2; the options and every run's config are checked (``--dry-run`` included) before anything runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..experiments import EXPERIMENTS, PROFILES, Sweep, field_paths, format_status
from ..experiments.core.config import get_path, parse_set_options, parse_values
from ..experiments.core.protocol import Experiment, Shorthand
from ..experiments.core.runs import run_dir, run_state
from ..experiments.core.sweep import run_sweep, sweep_status
from ..text import OptionError, parse_seeds
from ..training.distributed import init_distributed, is_main, resolve_device, world_size
from .command import device_line, standalone
from .paths import resolve_repo_path

DEFAULT_ROOT = "checkpoints"
# the kit's own options (argparse dests); an experiment's shorthands must not reuse them
KIT_OPTIONS = ("experiment", "task", "preset", "profile", "regularizer", "lambda_spec", "seeds", "grid", "set", "root",
               "resume", "wait", "skip_locked", "dry_run", "fields", "list")


def declared_shorthands() -> dict[str, list[tuple[Experiment, Shorthand]]]:
    """Option name -> the experiments that declare it, with their declarations (registry order)."""
    out: dict[str, list[tuple[Experiment, Shorthand]]] = {}
    for exp in EXPERIMENTS.values():
        for name, sh in exp.shorthands.items():
            if _dest(name) in KIT_OPTIONS:
                raise ValueError(f"{exp.name}: shorthand --{name} would shadow the kit's own option; rename it")
            out.setdefault(name, []).append((exp, sh))
    for name, decls in out.items():
        if len({sh.flag for _, sh in decls}) > 1:
            raise ValueError(f"--{name} is a flag in some experiments and takes a value in others; declare it alike")
    return out


def _dest(name: str) -> str:
    return name.replace("-", "_")


def _shorthand_help(decls: list[tuple[Experiment, Shorthand]]) -> str:
    """One help text per distinct declaration, headed by the experiments that make it (all: no heading)."""
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for exp, sh in decls:
        groups.setdefault((sh.help, sh.choices), []).append(exp.name)
    if len(groups) == 1 and len(decls) == len(EXPERIMENTS):
        return next(iter(groups))[0]
    return "; ".join(f"[{', '.join(names)}] {text}" for (text, _), names in groups.items())


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The door's options: the kit's own, then every shorthand an experiment of the registry declares."""
    p.add_argument("experiment", nargs="?", choices=sorted(EXPERIMENTS),
                   help="which experiment (leave out with --list to see them)")
    p.add_argument("--profile", default="smoke", choices=PROFILES,
                   help="the named preset the grid starts from: smoke = stand-in data and a tiny net on a CPU, in "
                        "seconds; cpu = a longer CPU run; paper = the paper's setting (default: smoke)")
    p.add_argument("--regularizer", default=None, metavar="V1,V2",
                   help="a grid axis of regularizer variants, comma-separated: baseline and the experiment's L_S "
                        "variants (see --list), or a registered spectral loss kind (default: the experiment's)")
    p.add_argument("--lambda_spec", "--lambda", dest="lambda_spec", default=None, metavar="L1,L2",
                   help="lambda_spec of Eq. 17 for the regularized variants, comma-separated: a grid axis (default: "
                        "the profile's); --lambda is an alias")
    p.add_argument("--seeds", default=None, metavar="S1,S2|A-B",
                   help="training seeds: comma-separated and/or ranges, e.g. 1,2,3 or 1-5 (default: the "
                        "experiment's seeds for the profile)")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                   help="a grid axis: a config field (dotted path like train.lr, or a unique leaf name like lr) and "
                        "its comma-separated values; tuples as [2,4],[2]; repeatable (--fields lists the fields)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a single-value override of a config field for every run (e.g. train.precision=fp32); "
                        "repeatable")
    p.add_argument("--root", default=DEFAULT_ROOT,
                   help=f"where run folders go (relative: from the repository root; default: {DEFAULT_ROOT})")
    p.add_argument("--dry-run", action="store_true",
                   help="list the runs (regularizer, lambda_spec, weighting, grid values, seed) and their state "
                        "(done/partial/...), then exit without training")
    p.add_argument("--resume", action="store_true",
                   help="only continue runs that already have a checkpoint; refuse to start new ones")
    p.add_argument("--wait", action="store_true",
                   help="if another process holds a run's lock, wait for it instead of stopping")
    p.add_argument("--skip-locked", action="store_true",
                   help="put off runs another process holds and wait for them at the end, so several workers "
                        "(e.g. one per core) can share one sweep")
    p.add_argument("--fields", action="store_true", help="list the experiment's config fields, their types and "
                                                         "the profile's values, then exit")
    p.add_argument("--list", action="store_true", help="list the experiments and their options, then exit")
    group = p.add_argument_group("options the experiments declare (each applies to the experiments named)")
    for name, decls in declared_shorthands().items():
        sh = decls[0][1]
        if sh.flag:
            group.add_argument(f"--{name}", dest=_dest(name), action="store_true", help=_shorthand_help(decls))
            continue
        same = len({s.choices for _, s in decls}) == 1 and sh.choices  # else each help text names its values
        metavar = "{" + ",".join(sh.choices) + "}" + (",..." if sh.axis else "") if same else \
            "V1,V2" if sh.axis else "VALUE"
        group.add_argument(f"--{name}", dest=_dest(name), default=None, metavar=metavar, help=_shorthand_help(decls))


def _applies_to(decls: list[tuple[Experiment, Shorthand]], args: argparse.Namespace) -> str:
    if getattr(args, "task", None):  # the finetune alias speaks in tasks
        return "--task " + "/".join(dict.fromkeys(e.task for e, _ in decls if e.task)) + " only"
    return ", ".join(e.name for e, _ in decls) + " only"


def check_options(args: argparse.Namespace) -> tuple[Sweep, dict[str, Any]]:
    """The Sweep the options describe (every run's config built and validated) and the artefact options, before
    any work. The config grammar and the configs' own checks raise ValueError/KeyError on a bad value: here, and
    only here, those are the user's text, so they become an :class:`OptionError` (one line, exit 2)."""
    try:
        sweep = build_sweep(args)
        options = artifact_options(sweep.experiment, args)
        sweep.experiment.check_artifact_options(options)
    except InputError:
        raise
    except (ValueError, KeyError) as err:
        raise OptionError(err.args[0] if isinstance(err, KeyError) and err.args else str(err)) from err
    return sweep, options


def _check_profile(exp: Experiment, profile: str) -> None:
    if profile not in exp.profiles:
        raise OptionError(f"--profile {profile}: {exp.name} has no {profile!r} profile; choose one of "
                          f"{', '.join(exp.profiles)}")


def build_sweep(args: argparse.Namespace) -> Sweep:
    """The Sweep the arguments describe; ValueError/KeyError with a clear message on bad input."""
    exp = EXPERIMENTS[args.experiment]
    _check_profile(exp, args.profile)
    cls = exp.config_class
    grid: dict[str, list[Any]] = {}
    overrides = parse_set_options(cls, args.set, exp.variants)

    def put(path: str, values: list[Any], source: str, axis: bool = True) -> None:
        if path in grid or path in overrides:
            raise ValueError(f"{source}: {path} is set twice (by --grid/--set and an option); give it once")
        if axis:
            grid[path] = values
        else:
            overrides[path] = values[0]

    for item in args.grid:
        key, sep, text = item.partition("=")
        if not sep or not text:
            raise ValueError(f"--grid {item!r} is not FIELD=V1,V2; write e.g. --grid train.lr=1e-4,5e-4")
        put(*parse_values(cls, key.strip(), text, exp.variants), f"--grid {item}")
    if args.regularizer is not None:
        put("regularizer", parse_values(cls, "regularizer", args.regularizer, exp.variants)[1], "--regularizer")
    if args.lambda_spec is not None:
        put(*parse_values(cls, "regularizer.lambda_spec", args.lambda_spec), "--lambda_spec")
    for name, decls in declared_shorthands().items():
        if getattr(args, _dest(name), None) not in (None, False) and name not in exp.shorthands:
            raise ValueError(f"--{name} applies to {_applies_to(decls, args)}; see --list for each "
                             "experiment's options")
    for name, sh in exp.shorthands.items():  # in the experiment's order: its axes vary in that order
        value = getattr(args, _dest(name), None)
        if value in (None, False):
            continue
        if sh.field is None:
            continue  # an artefact writer's option (write_artifacts)
        if sh.flag:
            put(sh.field, [True], f"--{name}", axis=False)
            continue
        try:
            path, values = parse_values(cls, sh.field, value, exp.variants)
        except ValueError as err:
            raise ValueError(f"--{name} {value}: {err}") from None
        bad = [v for v in values if sh.choices and v not in sh.choices]
        if bad or (len(values) != 1 and not sh.axis):
            raise ValueError(f"--{name} {value!r}: choose {'values' if sh.axis else 'one value'} of "
                             f"{', '.join(sh.choices) or sh.field}")
        put(path, values, f"--{name}", axis=sh.axis)
    if "regularizer" not in grid and "regularizer" not in overrides and exp.default_variants:
        grid["regularizer"] = list(exp.default_variants)
    first = ("regularizer", "regularizer.lambda_spec")  # the runs listed variant by variant
    grid = {**{k: grid[k] for k in first if k in grid}, **grid}
    seeds = parse_seeds(args.seeds) if args.seeds is not None else exp.default_seeds.get(args.profile, (1,))
    return Sweep(exp, args.profile, overrides, grid, seeds)


def artifact_options(exp: Experiment, args: argparse.Namespace) -> dict[str, Any]:
    """The experiment's shorthands given on the command line, name -> value (for ``write_artifacts``)."""
    return {name: getattr(args, _dest(name)) for name in exp.shorthands
            if getattr(args, _dest(name), None) not in (None, False)}


def _list() -> int:
    for name, exp in EXPERIMENTS.items():
        alias = f" --task {exp.task}" + (f" --preset {exp.preset}" if exp.preset else "") if exp.task else ""
        alias = f" (specreg finetune{alias})" if alias else ""
        print(f"{name}{alias}\n  profiles {', '.join(exp.profiles)}; variants {', '.join(exp.variants)}\n"
              f"  options {' '.join('--' + k for k in exp.shorthands) or '-'}; metrics {', '.join(exp.glossary)}")
    return 0


def _fields(args: argparse.Namespace) -> int:
    exp = EXPERIMENTS[args.experiment]
    _check_profile(exp, args.profile)
    cfg = exp.config(args.profile)
    for path, hint in field_paths(exp.config_class).items():
        value = get_path(cfg, path)
        if not hasattr(value, "__dataclass_fields__") or path == "regularizer":
            print(f"{path:34s} {str(hint):40s} {value!r}")
    print(f"\nregularizer variants: {', '.join(exp.variants)}")
    return 0


def execute(args: argparse.Namespace) -> int:
    """Entry point of ``specreg sweep``, ``specreg finetune`` and ``python -m specreg_lib.kit.sweep``."""
    if args.list or not args.experiment:
        _list()
        return 0 if args.list else 2
    if args.fields:
        return _fields(args)
    sweep, options = check_options(args)
    exp = sweep.experiment
    root = resolve_repo_path(args.root)
    init_distributed()  # under torchrun; a no-op otherwise. Before any run folder is named: they depend
    # on the number of shards
    say = print if is_main() else (lambda *a, **k: None)
    say(f"{exp.name}, profile {sweep.profile}: {len(sweep.configs())} runs under {root / exp.name}")
    tcfg = exp.train_config(sweep.base_config())
    say(f"global batch per optimiser step: {tcfg.batch_size} (world size {world_size()})")
    try:
        say(device_line(f"train.device={tcfg.device}", resolve_device(tcfg.device)))
    except ValueError as err:  # e.g. train.device=cuda on a machine without one: fine for listing the runs
        if not args.dry_run:
            raise OptionError(f"train.device={tcfg.device}: {err}") from None
        say(f"device: train.device={tcfg.device} is not usable here ({err})")
    say(format_status(sweep_status(sweep, root)))
    if args.dry_run:
        return 0
    if args.resume:
        fresh = [str(run_dir(exp, c, root)) for c in sweep.configs() if run_state(exp, c, root)[0] == "missing"]
        if fresh:
            more = f" and {len(fresh) - 3} more" if len(fresh) > 3 else ""
            raise OptionError(f"--resume: no checkpoint to continue for {len(fresh)} run(s): "
                              f"{', '.join(fresh[:3])}{more}; leave out --resume to start them")
    # A lock another process holds, a bad run-folder file, checkpoint or dataset, a full disk: InputErrors (or
    # ENOSPC) that kit/command.py reports as one line; anything else is a bug and keeps its traceback.
    results = run_sweep(sweep, root, wait=args.wait, skip_locked=args.skip_locked)
    if is_main():
        print("\n" + format_status(sweep_status(sweep, root)))
        for r in results:
            for path in exp.write_artifacts(r, options):
                print(f"wrote {path}")
        print_results(exp, results)
    return 0


def print_results(exp: Experiment, results: list) -> None:
    """One row per run, one column per metric the experiment declares (its ``glossary``) that a run reports."""
    keys = [k for k in exp.glossary if any(k in r.metrics for r in results)]
    widths = [max(12, len(k)) for k in keys]
    print("\n" + "  ".join(["run".ljust(44), *(k.rjust(w) for k, w in zip(keys, widths, strict=True))]))
    for r in results:
        cells = [f"{r.metrics[k]:{w}.4g}" if isinstance(r.metrics.get(k), int | float) else "-".rjust(w)
                 for k, w in zip(keys, widths, strict=True)]
        print("  ".join([Path(r.run_dir).name[:44].ljust(44), *cells]))


def main(argv: list[str] | None = None) -> int:
    """``python -m specreg_lib.kit.sweep``."""
    return standalone("sweep", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
