"""Step-time overhead of each spectral regularizer on DiffWave fine-tuning (the paper's "negligible overhead").

One optimiser step = the L1 eps loss (+ lambda * summed L_S(x0_hat, x0)), backward, Adam, as the experiment trains.
For each regularizer, baseline and regularized steps are timed in interleaved pairs (the order alternates), on the
same network, batch and crop, so machine load hits both alike; the table gives the median ratio over the pairs,
and, as a load-robust bound on the overhead, the median time of L_S's own forward + backward on the batch's
x0_hat (20 repeats) relative to the median baseline step.
Defaults: LMNT's full network (30 layers x 64 channels), 62 mel frames (15,872 samples), a batch of 2 on the CPU.
Usage: python benchmarks/bench_audio.py [--batch 2] [--pairs 10] [--threads 2] [--device cpu] [--tiny]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _report import add_out_argument, quartiles, spread, tee_to

from specreg_lib.experiments import DIFFWAVE
from specreg_lib.models.diffwave import build_diffwave, tiny_params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--frames", type=int, default=62, help="mel frames per crop (LMNT: 62)")
    p.add_argument("--pairs", type=int, default=10, help="interleaved (baseline, regularized) pairs per row")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tiny", action="store_true", help="the smoke network instead of LMNT's full one")
    add_out_argument(p)
    args = p.parse_args()
    with tee_to(args.out):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Interleave baseline and regularized steps per regularizer; print the table."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    arch = tiny_params() if args.tiny else {}
    model = build_diffwave(arch).to(device)
    n_mels = model.params.n_mels
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    x0 = (0.3 * torch.randn(args.batch, 1, args.frames * 256, device=device)).clamp(-1, 1)
    mel = torch.rand(args.batch, n_mels, args.frames, device=device)

    def step(loss_fn, seed: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model, x0, mel, generator=torch.Generator(device).manual_seed(seed)).mean().backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    # the paper profile's loss (L1, summed L_S, unweighted) on LMNT's default 50-step schedule (no checkpoint read)
    over = {"model.checkpoint": "", **{f"model.{k}": v for k, v in arch.items()}}
    base = DIFFWAVE.build_loss(DIFFWAVE.config("paper", {**over, "regularizer": None}))
    step(base, 0)  # warm-up
    print(f"DiffWave {'tiny' if args.tiny else '30x64'}, batch {args.batch}, {args.frames * 256} samples, "
          f"{args.device}, {args.threads} threads; median of {args.pairs} interleaved pairs\n")
    print("| regularizer | baseline s/step, median [min, max] | regularized s/step, median [min, max] | "
          "ratio, median of pairs (IQR) | L_S fwd+bwd ms, median [min, max] | L_S / step (medians) |")
    print("|---|---|---|---|---|---|")
    for name in ("amp", "amp_phase", "haar", "bior1.3"):
        reg = DIFFWAVE.build_loss(DIFFWAVE.config("paper", {**over, "regularizer": DIFFWAVE.variants[name]}))
        step(reg, 0)
        tb, tr, ratios = [], [], []
        for k in range(args.pairs):
            if k % 2:
                r, b = step(reg, k), step(base, k)
            else:
                b, r = step(base, k), step(reg, k)
            tb.append(b)
            tr.append(r)
            ratios.append(r / b)
        spectral = reg.spectral  # the summed L_S the loss holds: (B, 1, T) x 2 -> (B,)
        ls = []
        for _ in range(21):
            x0_hat = x0.clone().requires_grad_(True)
            t0 = time.perf_counter()
            spectral(x0_hat, x0).sum().backward()
            ls.append(time.perf_counter() - t0)
        ls_s = statistics.median(ls[1:])
        q1, med, q3 = quartiles(ratios)
        print(f"| {name} | {spread(tb, '.3f')} | {spread(tr, '.3f')} | {med:.4f} ({q1:.4f}-{q3:.4f}) | "
              f"{spread([1e3 * v for v in ls[1:]])} | {ls_s / statistics.median(tb):.5f} |")


if __name__ == "__main__":
    main()
