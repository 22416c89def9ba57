"""``specreg finetune --task audio``: fine-tune a pretrained diffusion model with a spectral loss, then evaluate.

Each (regularizer, lambda, seed) is one run folder under ``--root`` (``checkpoints/<experiment>/``): a killed
run resumes from its last checkpoint when started again; finished runs are only re-read. Vocoded held-out clips
are written as WAV files beside each run's metrics (``results/step-.../wavs/``).

Examples:

    specreg finetune --task audio --profile smoke --regularizer baseline,amp,haar
    specreg finetune --task audio --profile paper --regularizer baseline,amp,amp_phase,haar,bior1.3 \\
        --lambda 1e-4,1e-5,1e-6 --seeds 1,2,3,4,5 --checkpoint ~/diffwave-ljspeech-22kHz-1000578.pt \\
        --data ~/LJSpeech-1.1 --vggish ~/vggish-10086976.pth
    torchrun --nproc_per_node 4 -m specreg_lib.kit.finetune --task audio --profile paper --regularizer amp
    specreg finetune --task audio --profile paper --regularizer amp --resume    # continue, never start anew
"""

from __future__ import annotations

import argparse
import sys

from ..experiments import EXPERIMENTS, PROFILES, RunLocked, StepsConflict, Sweep, format_status
from ..experiments.config import parse_values
from ..experiments.runs import run_dir, run_state
from ..experiments.sweep import run_sweep, sweep_status
from ..training.distributed import init_distributed, is_main
from .paths import resolve_repo_path

# --task -> experiment name; a task is a pretrained model plus the data it is fine-tuned on (EDM adds "edm")
TASKS = {"audio": "diffwave"}
# options that are shorthands for config fields, per task: option dest -> dotted field
SHORTHANDS = {"audio": {"checkpoint": "model.local_path", "data": "data.path", "vggish": "evaluate.vggish_path",
                        "steps": "train.steps", "schedule": "sample.schedule", "n_clips": "sample.n_clips"}}
METRIC_KEYS = ("fad", "fd_mel", "utmos", "pesq", "mr_stft", "ndb", "seconds_per_step")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``finetune`` options."""
    p.add_argument("--task", required=True, choices=sorted(TASKS),
                   help="what to fine-tune: audio = LMNT DiffWave on LJSpeech (paper Table 2)")
    p.add_argument("--profile", default="smoke", choices=PROFILES,
                   help="smoke: stand-in data and a tiny net on a CPU, in seconds; cpu: a longer CPU run on the "
                        "stand-in; paper: the paper's setting")
    p.add_argument("--regularizer", default=None, metavar="V1,V2",
                   help="comma-separated variants: baseline, amp, amp_phase, haar, bior1.3 (default: all five)")
    p.add_argument("--lambda", dest="lambda_spec", default=None, metavar="L1,L2",
                   help="comma-separated lambda_spec values for the regularized variants (paper: 1e-4,1e-5,1e-6; "
                        "default: the profile's, 1e-4)")
    p.add_argument("--seeds", default=None, metavar="S1,S2",
                   help="comma-separated training seeds (default: smoke 1; paper 1,2,3,4,5)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (paper: 150000)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="a local copy of the pretrained checkpoint (audio: LMNT's diffwave-ljspeech-22kHz-1000578.pt), "
                        "checked against its SHA-256; default: the cache, else a download. Another file in LMNT's "
                        "layout: --set model.checkpoint=PATH")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="audio: the LJSpeech-1.1 archive or extracted folder (default: data/, downloaded if missing)")
    p.add_argument("--vggish", default=None, metavar="PATH",
                   help="audio: a local vggish-10086976.pth for FAD (default: the cache, else a download)")
    p.add_argument("--schedule", default=None, choices=("fast", "full"),
                   help="audio inference: LMNT's 6-step fast schedule (paper) or the 50 training steps")
    p.add_argument("--n-clips", dest="n_clips", type=int, default=None,
                   help="audio: held-out clips to vocode and score (0 = all LJ001*/LJ002*)")
    p.add_argument("--utmos", action="store_true",
                   help="audio: also score UTMOS (SpeechMOS via torch.hub: DOWNLOADS AND RUNS remote code)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other config field (e.g. train.precision=fp32, loss.reduction=mean); repeatable")
    p.add_argument("--root", default="checkpoints",
                   help="where run folders go (relative: from the repository root; default: checkpoints)")
    p.add_argument("--resume", action="store_true",
                   help="only continue runs that already have a checkpoint; refuse to start new ones")
    p.add_argument("--wait", action="store_true", help="wait for runs another process holds instead of stopping")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state, then exit")


def build(args: argparse.Namespace) -> Sweep:
    """The grid the options describe: variants x lambdas x seeds on the profile, with the overrides."""
    exp = EXPERIMENTS[TASKS[args.task]]
    cls = exp.config_class
    overrides: dict = {}
    for dest, field in SHORTHANDS[args.task].items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[field] = value
    if args.utmos:
        overrides["evaluate.utmos"] = True
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r} is not FIELD=VALUE")
        path, values = parse_values(cls, key.strip(), text, exp.variants)
        if len(values) != 1:
            raise ValueError(f"--set {item!r} gives {len(values)} values")
        overrides[path] = values[0]
    names = [v.strip() for v in (args.regularizer or ",".join(exp.default_variants)).split(",") if v.strip()]
    grid: dict = {"regularizer": names}
    if args.lambda_spec is not None:
        grid["regularizer.lambda_spec"] = parse_values(cls, "lambda_spec", args.lambda_spec)[1]
    seeds = exp.default_seeds.get(args.profile, (1,))
    if args.seeds is not None:
        try:
            seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
        except ValueError:
            raise ValueError(f"--seeds {args.seeds!r}: expected comma-separated integers") from None
    return Sweep(exp, args.profile, overrides, grid, seeds)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``specreg finetune`` and ``python -m specreg_lib.kit.finetune``; returns the exit code."""
    try:
        sweep = build(args)
    except (ValueError, KeyError, TypeError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) and err.args else err}", file=sys.stderr)
        return 2
    root = resolve_repo_path(args.root)
    init_distributed()
    say = print if is_main() else (lambda *a, **k: None)
    say(f"finetune --task {args.task} ({sweep.experiment.name}), profile {sweep.profile}: "
        f"{len(sweep.configs())} runs under {root / sweep.experiment.name}")
    say(format_status(sweep_status(sweep, root)))
    if args.dry_run:
        return 0
    if args.resume:
        fresh = [str(run_dir(sweep.experiment, c, root)) for c in sweep.configs()
                 if run_state(sweep.experiment, c, root)[0] == "missing"]
        if fresh:
            print("error: --resume: no checkpoint to continue for\n  " + "\n  ".join(fresh), file=sys.stderr)
            return 2
    try:
        results = run_sweep(sweep, root, wait=args.wait)
    except (RunLocked, StepsConflict) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if is_main():
        writer = getattr(sweep.experiment, "write_wavs", None)
        for r in results:
            if writer is not None:
                writer(r)
        keys = [k for k in METRIC_KEYS if results and k in results[0].metrics]
        print("\n" + "  ".join(["run".ljust(44), *(k.rjust(12) for k in keys)]))
        for r in results:
            print("  ".join([r.run_dir.name[:44].ljust(44), *(f"{r.metrics[k]:12.4g}" for k in keys)]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m specreg_lib.kit.finetune`` (e.g. under torchrun)."""
    parser = argparse.ArgumentParser(prog="specreg finetune", description=__doc__.splitlines()[0],
                                     epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
