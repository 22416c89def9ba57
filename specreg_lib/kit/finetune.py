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
    specreg finetune --task edm --profile smoke --regularizer baseline,amp --weighting weighted,unweighted
    specreg finetune --task edm --preset afhqv2-64 --arch vp,ve --profile paper --data ~/afhqv2-64x64.zip \
        --regularizer baseline,amp,amp_phase,haar,bior1.3 --weighting weighted,unweighted --seeds 1,2,3
    specreg finetune --task edm --profile paper --length five_steps --regularizer amp    # the text's reading
    torchrun --nproc_per_node 8 -m specreg_lib.kit.finetune --task edm --profile paper --regularizer amp
"""

from __future__ import annotations

import argparse
import sys

from ..experiments import EXPERIMENTS, PROFILES, RunLocked, StepsConflict, Sweep, format_status
from ..experiments.core.config import parse_set_options, parse_values
from ..experiments.core.runs import run_dir, run_state
from ..experiments.core.sweep import run_sweep, sweep_status
from ..training.distributed import init_distributed, is_main, world_size
from .paths import resolve_repo_path

# --task -> experiment name; a task is a pretrained model plus the data it is fine-tuned on (EDM adds "edm")
TASKS = {"audio": "diffwave", "edm": "edm_afhqv2"}
# options that are shorthands for config fields, per task: option dest -> dotted field
SHORTHANDS = {"audio": {"checkpoint": "model.local_path", "data": "data.path", "vggish": "evaluate.vggish_path",
                        "steps": "train.steps", "schedule": "sample.schedule", "n_clips": "sample.n_clips"},
              "edm": {"checkpoint": "model.checkpoint", "data": "data.path", "steps": "train.steps",
                      "length": "finetune.length", "reduction": "loss.reduction", "augment": "augment.p"}}
# options that are grid axes (comma-separated values), per task: option dest -> dotted field
AXES = {"audio": {}, "edm": {"arch": "model.arch", "weighting": "regularizer.weighting"}}
METRIC_KEYS = ("fad", "fd_mel", "utmos", "pesq", "mr_stft", "ndb", "log_distance", "fd_pixels", "seconds_per_step")


# options that belong to some tasks only: option dest -> tasks
_TASK_OPTIONS = {"preset": ("edm",), "arch": ("edm",), "weighting": ("edm",), "length": ("edm",),
                 "reduction": ("edm",), "augment": ("edm",), "export": ("edm",), "vggish": ("audio",),
                 "schedule": ("audio",), "n_clips": ("audio",), "utmos": ("audio",)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``finetune`` options."""
    p.add_argument("--task", required=True, choices=sorted(TASKS),
                   help="what to fine-tune: audio = LMNT DiffWave on LJSpeech (paper Table 2); edm = an EDM "
                        "checkpoint on its dataset (paper Tables 1 and 3; --preset picks the dataset)")
    p.add_argument("--preset", default=None, choices=("afhqv2-64", "ffhq-64", "cifar10-32"),
                   help="edm: Table 3's dataset preset (lr, dropout, augment, the official checkpoints); "
                        "default afhqv2-64")
    p.add_argument("--arch", default=None, metavar="A1,A2",
                   help="edm: vp (DDPM++) and/or ve (NCSN++), comma-separated: which official checkpoint(s) "
                        "(default vp)")
    p.add_argument("--weighting", default=None, metavar="W1,W2",
                   help="edm: weighted (lambda_EDM, default) and/or unweighted (lambda = 1), comma-separated")
    p.add_argument("--length", default=None, choices=("table3", "five_steps"),
                   help="edm: table3 = Table 3's 0.5 Mimg (default); five_steps = the paper text's '5 optimization "
                        "steps' (no LR ramp, no EMA). The paper contradicts itself; both are runnable")
    p.add_argument("--reduction", default=None, choices=("sum", "mean"),
                   help="edm: EDM's loss summed over C*H*W as EDM's training loop (default) or averaged as this "
                        "kit's losses; decides what lambda means (docs/edm_finetune.md)")
    p.add_argument("--augment", type=float, default=None, metavar="P",
                   help="edm: EDM's augment probability (Table 3: 0.15 at 64x64; default: the preset's)")
    p.add_argument("--export", action="store_true",
                   help="edm: also write each fine-tuned EMA network as an EDM pickle in its run folder "
                        "(network-snapshot-<steps>.pkl, loads with load_edm_checkpoint)")
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
                        "layout: --set model.checkpoint=PATH. edm: a registry name, URL or path of an EDM pickle "
                        "(default: the preset's official edm-*-<arch>.pkl; smoke: 'tiny')")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="audio: the LJSpeech-1.1 archive or extracted folder (default: data/, downloaded if missing); "
                        "edm: a zip or folder in EDM's layout (default data/<dataset>.zip; 'standin' = offline crops)")
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
    if args.task == "edm":
        from ..experiments.edm.experiment import edm_experiment

        exp = edm_experiment(getattr(args, "preset", None) or "afhqv2-64")
    else:
        exp = EXPERIMENTS[TASKS[args.task]]
    cls = exp.config_class
    overrides: dict = {}
    for dest, field in SHORTHANDS[args.task].items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[field] = value
    for opt, value in vars(args).items():  # options of the other task
        if value not in (None, False) and opt in _TASK_OPTIONS and args.task not in _TASK_OPTIONS[opt]:
            raise ValueError(f"--{opt.replace('_', '-')} applies to --task {'/'.join(_TASK_OPTIONS[opt])} only")
    if args.utmos:
        overrides["evaluate.utmos"] = True
    overrides.update(parse_set_options(cls, args.set, exp.variants))
    names = [v.strip() for v in (args.regularizer or ",".join(exp.default_variants)).split(",") if v.strip()]
    grid: dict = {"regularizer": names}
    if args.lambda_spec is not None:
        grid["regularizer.lambda_spec"] = parse_values(cls, "lambda_spec", args.lambda_spec)[1]
    for dest, field in AXES[args.task].items():
        if getattr(args, dest, None) is not None:
            grid[field] = parse_values(cls, field, getattr(args, dest))[1]
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
    tcfg = sweep.experiment.train_config(sweep.base_config())
    say(f"global batch per optimiser step: {tcfg.batch_size} (world size {world_size()})")
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
        exporter = getattr(sweep.experiment, "write_network", None) if getattr(args, "export", False) else None
        for r in results:
            if writer is not None:
                writer(r)
            if exporter is not None:
                print(f"wrote {exporter(r)}")
        keys = [k for k in METRIC_KEYS if results and k in results[0].metrics]
        print("\n" + "  ".join(["run".ljust(44), *(k.rjust(12) for k in keys)]))
        for r in results:
            print("  ".join([r.run_dir.name[:44].ljust(44), *(f"{r.metrics[k]:12.4g}" for k in keys)]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m specreg_lib.kit.finetune`` (e.g. under torchrun)."""
    from .cli import standalone

    return standalone("finetune", sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
