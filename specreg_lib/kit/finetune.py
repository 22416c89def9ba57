"""``specreg finetune``: fine-tune a pretrained model with a spectral loss, then evaluate (``specreg sweep`` by task).

The same door as ``specreg sweep EXPERIMENT``: the same options, code path, run folders and result table.
``--task T [--preset P]`` is an alias for the experiment's name: each experiment declares the task and preset it
answers to (``specreg sweep --list``), and a task without ``--preset`` means its first registered experiment.
``specreg finetune EXPERIMENT`` works too. Vocoded clips, exported networks and the like are written by the
experiment (``write_artifacts``) beside each run's metrics.

Examples (the tasks and presets this checkout declares follow below):

    specreg finetune --task TASK --profile smoke --regularizer baseline,amp,haar
    specreg finetune --task TASK --preset PRESET --profile paper --regularizer baseline,amp,amp_phase,haar,bior1.3 \\
        --lambda_spec 1e-4,1e-5,1e-6 --seeds 1-5 --checkpoint PATH --data PATH
    specreg finetune --task TASK --profile paper --regularizer amp --resume    # continue, never start anew
    torchrun --nproc_per_node 8 -m specreg_lib.kit.finetune --task TASK --profile paper --regularizer amp
"""

from __future__ import annotations

import argparse
import sys

from ..experiments import EXPERIMENTS
from ..text import OptionError
from . import sweep
from .command import standalone


def _aliases() -> str:
    """``--task T [--preset P] = EXPERIMENT`` per experiment that declares a task (for --help)."""
    lines, seen = [], set()
    for exp in EXPERIMENTS.values():
        if exp.task:
            preset = f" --preset {exp.preset}" if exp.preset else ""
            default = "  (the default of --task " + exp.task + ")" if exp.task not in seen else ""
            lines.append(f"    --task {exp.task}{preset} = {exp.name}{default}")
            seen.add(exp.task)
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``specreg sweep``'s options plus ``--task``/``--preset``, the alias for the experiment's name."""
    sweep.add_arguments(p)
    tasks = list(dict.fromkeys(e.task for e in EXPERIMENTS.values() if e.task))
    presets = list(dict.fromkeys(e.preset for e in EXPERIMENTS.values() if e.task and e.preset))
    p.add_argument("--task", default=None, choices=tasks,
                   help="what to fine-tune, by the task an experiment declares (instead of EXPERIMENT): "
                        "a pretrained model plus the data it is fine-tuned on; see the list below")
    p.add_argument("--preset", default=None, choices=presets,
                   help="with --task: which of the task's experiments (default: its first)")
    p.epilog = (p.epilog or "") + "\n\n--task / --preset and the experiments they name:\n" + _aliases()


def experiment_name(args: argparse.Namespace) -> str | None:
    """The experiment ``--task``/``--preset`` (or EXPERIMENT) names; an OptionError when they do not name one."""
    if args.task is None:
        if args.preset is not None:
            raise OptionError("--preset needs --task; give e.g. --task T --preset P (see --help)")
        return args.experiment
    if args.experiment is not None:
        raise OptionError(f"give EXPERIMENT ({args.experiment}) or --task, not both")
    candidates = [e for e in EXPERIMENTS.values() if e.task == args.task]
    if args.preset is None:
        return candidates[0].name
    for exp in candidates:
        if exp.preset == args.preset:
            return exp.name
    with_presets = [e.task for e in EXPERIMENTS.values() if e.preset == args.preset]
    own = [e.preset for e in candidates if e.preset]
    raise OptionError(f"--preset {args.preset} applies to --task {'/'.join(dict.fromkeys(with_presets))} only; "
                     + (f"choose one of {', '.join(own)}" if own else f"remove --preset for --task {args.task}"))


def execute(args: argparse.Namespace) -> int:
    """Entry point of ``specreg finetune`` and ``python -m specreg_lib.kit.finetune``: ``specreg sweep``'s."""
    args.experiment = experiment_name(args)
    return sweep.execute(args)


def main(argv: list[str] | None = None) -> int:
    """``python -m specreg_lib.kit.finetune`` (e.g. under torchrun)."""
    return standalone("finetune", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
