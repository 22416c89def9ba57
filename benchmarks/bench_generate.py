"""Generation speed with the real AFHQv2-64 DDPM++ network (random weights) and the sampler's own overhead.

The network is EDM's AFHQv2-64 "vp" configuration (edm.md 1g: SongUNet, 61,805,571 parameters, checked) under
EDM preconditioning (``EDMDenoiser``). Measured side by side, interleaved, in one run:

* images/s of ``sample_images`` (EDM Heun, ``--steps`` N, NFE 2N - 1) with the network, batch ``--batch``,
  both with ``per_image`` (the CPU default: one network call per image, bit-identical across batch sizes)
  and batched (one call per batch);
* the sampler's own time per NFE: the same ``sample_images`` call (casts, per-image loop, Heun arithmetic, sigma
  schedule) around a zero-cost denoiser (returns its input), at the paper's 40 steps;
* one network evaluation of the batch (``net(x, sigma)``), per NFE.

overhead % = sampler-only time per NFE / network time per NFE (goal < 1%). Totals: median [min, max] over
``--repeats``; every derived column (ms / NFE, images/s, %) from the medians.
Usage: python benchmarks/bench_generate.py [--device cpu] [--threads 2] [--batch 2] [--steps 2] [--repeats 3] [--out F]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _report import add_out_argument, spread, tee_to
from torch import nn

from specreg_lib.diffusion.generate import SamplerSettings, sample_images
from specreg_lib.models import EDMDenoiser, SongUNet, count_parameters

AFHQ_DDPMPP = dict(img_resolution=64, in_channels=3, out_channels=3, label_dim=0, augment_dim=9, model_channels=128,
                   channel_mult=[1, 2, 2, 2], channel_mult_emb=4, num_blocks=4, attn_resolutions=[16], dropout=0.25,
                   label_dropout=0.0, embedding_type="positional", channel_mult_noise=1, encoder_type="standard",
                   decoder_type="standard", resample_filter=[1, 1])


class ZeroCost(nn.Module):
    """A denoiser that costs nothing: D(x; sigma) = x, with the geometry of the 64x64 net."""

    img_channels, img_resolution, label_dim = 3, 64, 0

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, class_labels: object = None) -> torch.Tensor:
        return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2, help="images per batch")
    ap.add_argument("--steps", type=int, default=2, help="Heun steps N for the network runs (NFE 2N - 1)")
    ap.add_argument("--repeats", type=int, default=3)
    add_out_argument(ap)
    args = ap.parse_args()
    with tee_to(args.out):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Time the cases interleaved and print the tables."""
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    net = EDMDenoiser(SongUNet(**AFHQ_DDPMPP)).to(dev).eval()
    assert count_parameters(net) == 61_805_571, count_parameters(net)
    seeds = list(range(args.batch))
    few, paper = SamplerSettings(num_steps=args.steps), SamplerSettings(num_steps=40)
    x = torch.randn(args.batch, 3, 64, 64, device=dev)
    sigma = torch.full((args.batch,), 2.5, device=dev)
    zero = ZeroCost()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    cases = {
        "net per_image": lambda: sample_images(net, seeds, few, device=dev, per_image=True),
        "net batched": lambda: sample_images(net, seeds, few, device=dev, per_image=False),
        "one forward": lambda: net(x, sigma),
        "zero-cost per_image (40 steps)": lambda: sample_images(zero, seeds, paper, device=dev, per_image=True),
        "zero-cost batched (40 steps)": lambda: sample_images(zero, seeds, paper, device=dev, per_image=False),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    with torch.no_grad():
        for fn in cases.values():  # warm-up
            fn()
        for _ in range(args.repeats):  # interleaved, so machine load hits every case alike
            for name, fn in cases.items():
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
    nfe_few, nfe_paper = few.nfe(64), paper.nfe(64)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch {torch.__version__}, device {dev}, threads {args.threads}, batch {args.batch}, "
          f"AFHQv2-64 DDPM++ ({count_parameters(net):,} params), random weights; median [min, max] of {args.repeats}\n")
    print("| measurement | NFE | total s | ms / NFE | images/s | at 40 steps (NFE 79): s / image |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("net per_image", "net batched"):
        per_nfe = med[name] / nfe_few
        print(f"| sampler + network, {name[4:]} | {nfe_few} | {spread(times[name])} | {1e3 * per_nfe:.1f} "
              f"| {args.batch / med[name]:.3f} | {per_nfe * nfe_paper / args.batch:.1f} |")
    print(f"| one network evaluation of the batch | 1 | {spread(times['one forward'])} | "
          f"{1e3 * med['one forward']:.1f} | | |")
    for name in ("zero-cost per_image (40 steps)", "zero-cost batched (40 steps)"):
        print(f"| sampler only, {name} | {nfe_paper} | {spread(times[name], '.4f')} | "
              f"{1e3 * med[name] / nfe_paper:.3f} | | |")
    print("\n| sampler overhead per NFE / one network evaluation | % |\n|---|---:|")
    for name in ("zero-cost per_image (40 steps)", "zero-cost batched (40 steps)"):
        print(f"| {name.split(' (')[0]} | {100 * (med[name] / nfe_paper) / med['one forward']:.4f} |")


if __name__ == "__main__":
    main()
