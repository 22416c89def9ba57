"""Sampler overhead outside network evaluations, per network evaluation, on a (16, 3, 64, 64) batch.

Each sampler is driven by an identity network, so everything it times is the sampler's own work (and, for
EDM, the preconditioning). That per-NFE time is compared with one forward pass of a 64x64 U-Net of realistic
size (``specreg_lib.models.unet.UNet``, 128 channels, mults 1-2-2-2, 2 blocks, attention at 16x16 and in the
middle: the layout of DDPM++ at 64x64, ~36M parameters). Goal: overhead < 1% of that forward.
Prints a markdown table of the median [min, max] over ``--repeats`` runs (overhead from the medians); the U-Net
time is the median [min, max] of 3.
Usage: python benchmarks/bench_samplers.py [--threads 2] [--repeats 5] [--out benchmarks/results/bench_samplers.txt]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from _report import add_out_argument, spread, tee_to
from torch import nn

from specreg_lib.diffusion import ddpm, edm
from specreg_lib.diffusion.schedules import DDPMSchedule
from specreg_lib.models.unet import UNet, UNetConfig, count_parameters

SHAPE = (16, 3, 64, 64)


class Identity(nn.Module):
    """F(x, t[, cond]) = x: a network that costs (almost) nothing."""

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:
        return x


def time_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall times in ms of ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    add_out_argument(ap)
    args = ap.parse_args()
    with tee_to(args.out):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Time every sampler and the U-Net forward; print the table."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(SHAPE)
    net = Identity()
    linear = DDPMSchedule.from_kind("linear", T=1000)
    short = DDPMSchedule.from_kind("linear", T=100, beta_end=0.2)
    g = torch.Generator().manual_seed(0)
    # name -> (run, number of network evaluations)
    cases: dict[str, tuple[Callable[[], object], int]] = {
        "DDPM ancestral (100 steps)": (lambda: ddpm.ancestral_sample(net, x, short, generator=g), 100),
        "DDPM ancestral, clip_x0=1 (100 steps)": (
            lambda: ddpm.ancestral_sample(net, x, short, clip_x0=1.0, generator=g), 100),
        "DDIM eta=0 (50 of 1000 steps)": (
            lambda: ddpm.ddim_sample(net, x, linear, timesteps=ddpm.ddim_timesteps(1000, 50)), 50),
        "DDIM eta=1 (50 of 1000 steps)": (
            lambda: ddpm.ddim_sample(net, x, linear, timesteps=ddpm.ddim_timesteps(1000, 50), eta=1.0,
                                     generator=g), 50),
    }
    for kind in edm.KINDS:
        D = edm.Precond(net, kind)
        sig = edm.sampler_sigmas(D, 18)
        cases[f"EDM Heun + {kind.upper()} precond (18 steps)"] = (lambda D=D, s=sig: edm.heun_sample(D, x, s), 35)
        cases[f"EDM Euler + {kind.upper()} precond (18 steps)"] = (lambda D=D, s=sig: edm.euler_sample(D, x, s), 18)
    D = edm.Precond(net, "edm")
    cases["EDM Heun, churn 40 (18 steps)"] = (
        lambda: edm.heun_sample(D, x, edm.sigma_steps(18), S_churn=40, S_min=0.05, S_max=50, generator=g), 35)

    cfg = UNetConfig(resolution=64, in_channels=3, out_channels=3, base_channels=128,
                     channel_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), mid_attention=True)
    unet = UNet(cfg).eval()
    with torch.no_grad():
        unet_times = time_ms(lambda: unet(x, torch.full((SHAPE[0],), 500.0)), 3)
    unet_ms = statistics.median(unet_times)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {SHAPE}, float32, CPU")
    print(f"U-Net forward ({count_parameters(unet) / 1e6:.1f}M params): {spread(unet_times, '.0f')} ms "
          f"(median [min, max] of 3)\n")
    print(f"| sampler (identity network) | NFE | total ms, median [min, max] of {args.repeats} | overhead ms / NFE "
          "(median) | % of one U-Net forward (medians) |")
    print("|---|---:|---:|---:|---:|")
    for name, (fn, nfe) in cases.items():
        times = time_ms(fn, args.repeats)
        med = statistics.median(times)
        print(f"| {name} | {nfe} | {spread(times, '.1f')} | {med / nfe:.3f} | {100 * med / nfe / unet_ms:.3f}% |")


if __name__ == "__main__":
    main()
