"""The gradient-ratio table of docs/drop_in.md: |grad w L_S| / |grad L_diff| at initialisation, lambda_spec = 1.

Per formulation x weighting x regularizer, ``term_balance`` on a diffusers ``UNet2DModel`` (block_out_channels
(16, 32), 1 layer per block) at initialisation, 16x16 grayscale photo crops (stand-in data), batch 64; DDPM with
diffusers' linear 1000-step schedule (eps), EDM with ``EDMLoss`` + ``Precond``; wavelets 1 level (bior1.3 allows
only 1 at 16x16). Each cell is the mean over ``--draws`` draws (a new batch, noise and network init each) with
[min, max]. Deterministic for a given ``--seed``: no timing.
Usage: python benchmarks/bench_term_balance.py [--draws 3] [--out benchmarks/results/bench_term_balance.txt]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _report import add_out_argument, tee_to
from diffusers import DDPMScheduler, UNet2DModel

from specreg_lib.data.patches import ImagePatches
from specreg_lib.diffusion import DDPMLoss, DDPMSchedule, EDMLoss, Precond, Regularizer, term_balance

REGULARIZERS = {"amp": ("amp", {}), "amp_phase": ("amp_phase", {}),
                "haar": ("wavelet", {"wave": "haar", "levels": 1}),
                "bior1.3": ("wavelet", {"wave": "bior1.3", "levels": 1})}
WEIGHTINGS = {"DDPM": ("alpha_bar", "unweighted", "weighted"), "EDM": ("weighted", "unweighted", "min_snr")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    add_out_argument(ap)
    args = ap.parse_args()
    with tee_to(args.out):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Measure every cell ``args.draws`` times; print the table of mean [min, max] gradient ratios."""
    torch.set_num_threads(args.threads)
    data = ImagePatches(size=16, scale=2)
    schedule = DDPMSchedule.from_diffusers(DDPMScheduler(num_train_timesteps=1000))
    ratios: dict[tuple[str, str, str], list[float]] = {}
    diffusion: dict[str, list[float]] = {"DDPM": [], "EDM": []}
    for draw in range(args.draws):
        seed = args.seed + 10 * draw
        torch.manual_seed(seed)
        unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, block_out_channels=(16, 32),
                           layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8)
        x0 = data(args.batch, torch.Generator().manual_seed(seed + 1))
        for form, weightings in WEIGHTINGS.items():
            for weighting in weightings:
                for name, (kind, options) in REGULARIZERS.items():
                    reg = Regularizer(kind, weighting=weighting, options=options)
                    loss, net = ((DDPMLoss(schedule, regularizer=reg), unet) if form == "DDPM"
                                 else (EDMLoss(regularizer=reg), Precond(unet)))
                    b = term_balance(loss, net, x0, generator=torch.Generator().manual_seed(seed + 2))
                    ratios.setdefault((form, weighting, name), []).append(b["grad_ratio"])
                    diffusion[form].append(b["diffusion"])
    print(f"torch {torch.__version__}, CPU; gradient ratio |grad w L_S| / |grad L_diff| at lambda_spec = 1, "
          f"mean [min, max] over {args.draws} draws, batch {args.batch}, 16x16\n")
    print("| formulation | weighting | " + " | ".join(REGULARIZERS) + " |")
    print("|---|---|" + "---:|" * len(REGULARIZERS))
    for form, weightings in WEIGHTINGS.items():
        for weighting in weightings:
            cells = [ratios[form, weighting, name] for name in REGULARIZERS]
            print(f"| {form} | {weighting} | "
                  + " | ".join(f"{statistics.mean(c):.3g} [{min(c):.3g}, {max(c):.3g}]" for c in cells) + " |")
    print("\nmean diffusion loss L_diff: " + ", ".join(f"{f} {statistics.mean(v):.3f}" for f, v in diffusion.items()))


if __name__ == "__main__":
    main()
