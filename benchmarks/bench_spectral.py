"""Forward+backward time of the spectral losses against what a user would otherwise reach for.

Prints a markdown table (median [min, max] ms over repeats, after warm-up; ratios per round, median and IQR).
All candidates of one shape are timed round-robin in the same loop, so machine load hits them alike and the
ratio columns are side by side.
Usage: python benchmarks/bench_spectral.py [--threads 2] [--repeats 40] [--out benchmarks/results/bench_spectral.txt]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pytorch_wavelets imports pkg_resources
    from pytorch_wavelets import DWT1DForward, DWTForward

from _report import add_out_argument, quartiles, spread, tee_to
from focal_frequency_loss import FocalFrequencyLoss

from specreg_lib.spectral import amplitude_loss, amplitude_phase_loss, wavelet_loss


class NaiveAmplitude:
    """Two full ``fftn`` and the two-sided mean: what Eq. 14 looks like written directly."""

    def __init__(self, ndim: int) -> None:
        self.dims = tuple(range(-ndim, 0))

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        Fa, Fb = torch.fft.fftn(a, dim=self.dims, norm="ortho"), torch.fft.fftn(b, dim=self.dims, norm="ortho")
        return (Fa.abs() - Fb.abs()).abs().flatten(1).mean(1)


class NaiveWavelet:
    """Two pytorch-wavelets transforms (Haar, J=3, zero mode) and the per-band L1 sum."""

    def __init__(self, ndim: int) -> None:
        self.dwt = (DWTForward if ndim == 2 else DWT1DForward)(J=3, wave="haar", mode="zero")

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        (la, ha), (lb, hb) = self.dwt(a), self.dwt(b)
        loss = (la - lb).abs().flatten(1).mean(1)
        for x, y in zip(ha, hb):
            loss = loss + (x - y).abs().flatten(1).mean(1)
        return loss


class Focal:
    """focal-frequency-loss (Jiang et al. 2021), audio viewed as (B, C, 1, T)."""

    def __init__(self) -> None:
        self.loss = FocalFrequencyLoss()

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.dim() == 3:
            a, b = a.unsqueeze(2), b.unsqueeze(2)
        return self.loss(a, b)


def candidates(ndim: int) -> dict[str, tuple[object, str]]:
    """name -> (loss callable, name of the reference it is compared with)."""
    return {
        "focal-frequency-loss": (Focal(), ""),
        "naive two-fft amplitude": (NaiveAmplitude(ndim), "focal-frequency-loss"),
        "amplitude_loss (Eq. 14)": (lambda a, b: amplitude_loss(a, b, ndim), "focal-frequency-loss"),
        "amplitude_phase_loss (Eq. 15)": (lambda a, b: amplitude_phase_loss(a, b, ndim), "focal-frequency-loss"),
        "naive pytorch-wavelets Haar J=3": (NaiveWavelet(ndim), ""),
        "wavelet_loss haar J=3 (Eq. 16)": (lambda a, b: wavelet_loss(a, b, "haar", 3, ndim),
                                           "naive pytorch-wavelets Haar J=3"),
        "wavelet_loss bior1.3 J=3 (Eq. 16)": (lambda a, b: wavelet_loss(a, b, "bior1.3", 3, ndim),
                                              "naive pytorch-wavelets Haar J=3"),
    }


def time_all(shape: tuple[int, ...], repeats: int, warmup: int = 5) -> dict[str, list[float]]:
    """Fwd+bwd milliseconds of every candidate on ``shape`` (one list per candidate), timed round-robin."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(shape, generator=g)
    x0_hat = torch.randn(shape, generator=g).requires_grad_()
    cands = candidates(len(shape) - 2)
    times: dict[str, list[float]] = {name: [] for name in cands}
    for i in range(warmup + repeats):
        for name, (fn, _) in cands.items():
            t0 = time.perf_counter()
            fn(x0_hat, x0).sum().backward()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
            x0_hat.grad = None
    return {name: [1e3 * v for v in t] for name, t in times.items()}


def print_table(results: dict[str, dict[str, list[float]]]) -> None:
    """One markdown table: median [min, max] ms per loss, and each row's ratio to its reference.

    The ratio is taken per round (both timed in the same round-robin pass, so under the same load) and given as
    the median with its interquartile range over the rounds.
    """
    labels = list(results)
    print("| loss | " + " | ".join(f"{label}: ms, median [min, max] | ratio, median (IQR)" for label in labels)
          + " | ratio vs |")
    print("|---|" + "---:|---:|" * len(labels) + "---|")
    for name, (_, ref) in candidates(2).items():
        cells = []
        for label in labels:
            t = results[label]
            if ref:
                q1, med, q3 = quartiles([a / b for a, b in zip(t[name], t[ref], strict=True)])
                ratio = f"{med:.2f}x ({q1:.2f}-{q3:.2f})"
            else:
                ratio = "1"
            cells.append(f"{spread(t[name])} | {ratio}")
        print(f"| {name} | {' | '.join(cells)} | {ref or '(reference)'} |")
    print()


def main(argv: list[str] | None = None) -> int:
    """Time the image and audio shapes and print the markdown table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=40)
    add_out_argument(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = {"image (16, 3, 64, 64)": (16, 3, 64, 64), "audio (16, 1, 16000)": (16, 1, 16000)}
    with tee_to(args.out):
        results = {label: time_all(shape, args.repeats) for label, shape in shapes.items()}
        print(f"torch {torch.__version__}, CPU, torch.set_num_threads({args.threads}), fwd+bwd, "
              f"{args.repeats} repeats after warm-up, round-robin\n")
        # On a shared machine the median carries other jobs' load; [min, max] shows how much.
        print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
