"""EDM fine-tuning at the start: the two terms' sizes and gradient norms per regularizer, and the step-time overhead.

``--what terms`` (default) prints, for the AFHQv2-64 DDPM++ configuration (EDMPrecond, 61.8 M parameters, random
init from a fixed seed; an official checkpoint with ``--checkpoint``) on one batch of stand-in crops, for each
regularizer and weighting and for both reductions of EDM's loss (``sum`` over C*H*W as EDM's loop, ``mean`` as
this kit's losses): the batch means of the diffusion term and of w * L_S (lambda_spec = 1), their ratio, the
gradient norms over the network's parameters and their ratio. The same noise is used for every row.

``--what overhead`` times one optimiser step (loss, backward, Adam) baseline vs regularized in interleaved pairs
(the order alternates) on the same network and batch, and prints the median ratio per regularizer; beside it,
as a load-robust bound on the overhead, the median time of L_S's own forward + backward on the batch relative
to the median baseline step (on a busy machine the pair ratio is noise of several percent).

Usage: python benchmarks/bench_edm_finetune.py [--what terms|overhead] [--batch 2] [--pairs 10] [--threads 2]
       [--checkpoint edm-afhqv2-64x64-uncond-vp.pkl] [--device cpu] [--tiny]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _report import add_out_argument, quartiles, spread, tee_to

from specreg_lib.data.augment import AugmentPipe
from specreg_lib.data.patches import ImagePatches
from specreg_lib.diffusion import EDMLoss, Regularizer
from specreg_lib.diffusion.edm_train import EDMTrainLoss, term_table
from specreg_lib.experiments.edm.experiment import EDM_VARIANTS
from specreg_lib.models import EDMDenoiser, SongUNet, load_edm_checkpoint
from specreg_lib.models.songunet import DDPMPP


def afhq_ddpmpp(tiny: bool) -> EDMDenoiser:
    """EDM's AFHQv2-64 DDPM++ (train.py --arch=ddpmpp --cres=1,2,2,2 --dropout=0.25 --augment=0.15), seed 0."""
    torch.manual_seed(0)
    kw = {**DDPMPP, "channel_mult": [1, 2, 2, 2], "dropout": 0.25}
    if tiny:
        kw.update(model_channels=16, channel_mult=[1, 2], num_blocks=1)
    return EDMDenoiser(SongUNet(img_resolution=64 if not tiny else 16, in_channels=3, out_channels=3,
                                augment_dim=9, **kw), "edm")


def regularizers() -> dict[str, Regularizer]:
    out = {}
    for name, reg in EDM_VARIANTS.items():
        if reg is None:
            continue
        for w in ("weighted", "unweighted"):
            out[f"{name}/{w}"] = Regularizer(reg.kind, 1.0, w, reg.options)
    return out


def batch(net: EDMDenoiser, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    R = net.img_resolution
    x = ImagePatches(size=R, scale=2).sample(n, torch.Generator().manual_seed(0)).repeat(1, 3, 1, 1)
    return AugmentPipe(p=0.15)(x, torch.Generator().manual_seed(1))


def terms(net: EDMDenoiser, y: torch.Tensor, cond: torch.Tensor) -> None:
    net.train()
    rows = term_table(net, y, regularizers(), cond=cond)
    print("| regularizer / weighting | pixels | L_diff | w L_S | w L_S / L_diff | grad L_diff | grad w L_S "
          "| grad ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        vals = (r["diffusion"], r["spectral"], r["term_ratio"], r["grad_diffusion"], r["grad_spectral"],
                r["grad_ratio"])
        print(f"| {r['regularizer']} | {r['pixels']} | " + " | ".join(f"{v:.4g}" for v in vals) + " |")


def step_time(net: EDMDenoiser, loss: EDMTrainLoss, opt: torch.optim.Optimizer, y: torch.Tensor,
              cond: torch.Tensor, seed: int) -> float:
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss(net, y, cond, generator=torch.Generator().manual_seed(seed)).mean().backward()
    opt.step()
    return time.perf_counter() - t0


def spectral_cost(reg: Regularizer, x0_hat: torch.Tensor, x0: torch.Tensor, repeats: int = 20) -> float:
    """Median seconds of L_S's own forward + backward on a batch of x0_hat (the part a regularizer adds)."""
    loss = reg.spectral_loss()
    times = []
    for _ in range(repeats):
        leaf = x0_hat.detach().requires_grad_(True)
        t0 = time.perf_counter()
        loss(leaf, x0).sum().backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def overhead(net: EDMDenoiser, y: torch.Tensor, cond: torch.Tensor, pairs: int) -> None:
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-12)  # the optimiser's cost, weights kept (almost) as they are
    base = EDMTrainLoss(EDMLoss(), "sum")
    step_time(net, base, opt, y, cond, 0)  # warm-up
    x0_hat = y + 0.1 * torch.randn(y.shape, generator=torch.Generator(y.device).manual_seed(0), device=y.device)
    print(f"medians of {pairs} interleaved pairs with [min, max], the step-time ratio's quartiles over the pairs; "
          "L_S alone: median of 20 repeats\n")
    print("| regularizer | baseline step s | regularized step s | pair ratio, median (IQR) | L_S alone s | "
          "L_S / baseline step |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, reg in regularizers().items():
        if not name.endswith("/weighted"):
            continue  # the weighting does not change the cost
        loss = EDMTrainLoss(EDMLoss(regularizer=reg), "sum")
        b, r = [], []
        for i in range(pairs):
            order = [(base, b), (loss, r)] if i % 2 == 0 else [(loss, r), (base, b)]
            for fn, out in order:
                out.append(step_time(net, fn, opt, y, cond, i))
        q1, ratio, q3 = quartiles([rr / bb for rr, bb in zip(r, b, strict=True)])
        cost = spectral_cost(reg, x0_hat, y)
        print(f"| {name} | {spread(b, '.3f')} | {spread(r, '.3f')} | {ratio:.3f} ({q1:.3f}-{q3:.3f}) | {cost:.4f} | "
              f"{cost / statistics.median(b):.5f} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--what", choices=("terms", "overhead"), default="terms")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", default=None, help="an EDM pickle (path or registry name) instead of random init")
    p.add_argument("--tiny", action="store_true", help="a 16x16 toy-size net (checks the script in seconds)")
    add_out_argument(p)
    a = p.parse_args()
    with tee_to(a.out):
        run(a)


def run(a: argparse.Namespace) -> None:
    """Build the net and the batch; print the terms or the overhead table."""
    torch.set_num_threads(a.threads)
    net = load_edm_checkpoint(a.checkpoint) if a.checkpoint else afhq_ddpmpp(a.tiny)
    net = net.to(a.device)
    y, cond = batch(net, a.batch)
    y, cond = y.to(a.device), cond.to(a.device)
    print(f"network: {a.checkpoint or 'AFHQv2-64 DDPM++, random init (seed 0)' + (' [tiny]' if a.tiny else '')}, "
          f"{sum(q.numel() for q in net.parameters()) / 1e6:.2f} M parameters; batch {a.batch} of "
          f"{tuple(y.shape[1:])} stand-in crops, augment p=0.15; device {a.device}, {a.threads} threads")
    (terms if a.what == "terms" else lambda *z: overhead(*z, a.pairs))(net, y, cond)


if __name__ == "__main__":
    main()
