"""phase_eps of Eq. 15: how far the softened phase gradient is from the exact one, and how large it gets.

Prints one table: for each phase_eps, (1) the relative L2 distance between our gradient and exact autograd
(torch.angle, no softening) on random pairs whose spectra have energy everywhere, median over seeds; (2) the
gradient norm at an almost constant x0_hat (constant + 1e-8 noise, what a denoiser outputs at high sigma),
where the exact gradient explodes. Deterministic (float64, fixed seeds): no timing, so no spread to report.
Run: ``python benchmarks/bench_phase_eps.py [--out benchmarks/results/bench_phase_eps.txt]``.
"""

from __future__ import annotations

import argparse
import functools
import statistics

import torch
from _report import add_out_argument, tee_to

from specreg_lib.spectral import amplitude_phase_loss

EPS = (0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3)


def exact_loss(x0_hat: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Eq. 15 per frequency with plain autograd through torch.angle (the unsoftened reference): (B,)."""
    F_hat, F = torch.fft.fft2(x0_hat, norm="ortho"), torch.fft.fft2(x0, norm="ortho")
    dphi = torch.angle(F_hat * F.conj()).abs()
    return ((F_hat.abs() - F.abs()).abs() * (1 + dphi)).flatten(1).mean(1)


def grad(fn, x0_hat: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    x = x0_hat.clone().requires_grad_(True)
    fn(x, x0).sum().backward()
    return x.grad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_out_argument(ap)
    args = ap.parse_args()
    with tee_to(args.out):
        run()


def run() -> None:
    """Print the phase_eps table."""
    torch.manual_seed(0)
    shape = (4, 3, 32, 32)
    pairs = [(torch.randn(shape, dtype=torch.float64), torch.randn(shape, dtype=torch.float64)) for _ in range(5)]
    x0 = pairs[0][1]
    flat = torch.full(shape, 0.3, dtype=torch.float64) + 1e-8 * torch.randn(shape, dtype=torch.float64)
    g_exact_flat = grad(exact_loss, flat, x0).norm().item()
    amp_flat = grad(lambda a, b: amplitude_phase_loss(a, b, phase_eps=1e9), flat, x0).norm().item()
    print(f"exact autograd at constant x0_hat (+1e-8 noise): grad norm {g_exact_flat:.3g}; "
          f"amplitude term alone (phase_eps -> inf): {amp_flat:.3g}")
    # nearly constant predictions: 0.3 + delta * noise, delta from 1e-8 to 1 (a denoiser from high to low sigma)
    # an image-like target and a prediction that is close to it (x0 + 0.3 noise): a denoiser at low sigma
    images = [(y + 0.3 * torch.randn(shape, dtype=torch.float64), y) for y in (_power_law(shape) for _ in range(5))]
    near = [0.3 + d * torch.randn(shape, dtype=torch.float64) for d in (1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 0.1, 1.0)]
    print("| phase_eps | rel. L2 distance to the exact gradient (random pairs, median of 5) | grad norm at constant "
          "x0_hat | worst grad norm / amplitude-only grad norm, x0_hat = 0.3 + delta noise, delta 1e-8..1 | rel. "
          "distance to exact, image-like pairs (x0 ~ f^-2, x0_hat = x0 + 0.3 noise) |")
    print("|---|---|---|---|---|")
    amp_only = [grad(functools.partial(amplitude_phase_loss, phase_eps=1e9), h, x0).norm().item() for h in near]
    worst_exact = max(grad(exact_loss, h, x0).norm().item() / a for h, a in zip(near, amp_only, strict=True))
    print(f"| exact autograd | 0 | {g_exact_flat:.3g} | {worst_exact:.3g} | 0 |")
    for eps in EPS:
        loss = functools.partial(amplitude_phase_loss, phase_eps=eps)
        rel = statistics.median(_rel(grad(loss, h, y), grad(exact_loss, h, y)) for h, y in pairs)
        rel_img = statistics.median(_rel(grad(loss, h, y), grad(exact_loss, h, y)) for h, y in images)
        g_flat = grad(loss, flat, x0).norm().item()
        worst = max(grad(loss, h, x0).norm().item() / a for h, a in zip(near, amp_only, strict=True))
        print(f"| {eps:g} | {rel:.3g} | {g_flat:.3g} | {worst:.3g} | {rel_img:.3g} |")


def _rel(g: torch.Tensor, exact: torch.Tensor) -> float:
    return ((g - exact).norm() / exact.norm()).item()


def _power_law(shape: tuple[int, ...]) -> torch.Tensor:
    """Gaussian field with power ~ f^-2 (natural-image-like spectrum), unit variance: shape."""
    f = torch.sqrt(torch.fft.fftfreq(shape[-2])[:, None] ** 2 + torch.fft.fftfreq(shape[-1])[None, :] ** 2)
    f[0, 0] = 1.0
    x = torch.fft.ifft2(torch.fft.fft2(torch.randn(shape, dtype=torch.float64)) / f).real
    return x / x.std()


if __name__ == "__main__":
    main()
