"""Checkerboard structure metrics: did a model learn the family of ``specreg_lib.data.CheckerboardFamily``?

Metrics on samples x in (B, 1, H, W):
* ``binariness``: fraction of pixels within 0.1 of -1 or +1 (ground truth: 1).
* ``valid``: sign(x) equals some member of the family on all but ``tol`` (5%) of its pixels.
  An exhaustive match against every (side, offset): exact, cheap, and it checks structure rather than values.
* ``peak_energy_ratio``: mean 2-D power at the family's peak frequencies relative to the ground truth's
  (1 = right amplitude; soft, gray samples score < 1).
* ``in_band_fraction``: share of a sample's non-DC power that falls on the peak frequencies (ground truth: 1;
  1 - this = spectral leakage).
"""

from __future__ import annotations

import torch

from ..data.checkerboard import CheckerboardFamily


def binariness(x: torch.Tensor, tol: float = 0.1) -> torch.Tensor:
    """Per-sample fraction of pixels within ``tol`` of -1 or +1: (B, ...) -> (B,)."""
    close = ((x - 1).abs() <= tol) | ((x + 1).abs() <= tol)
    return close.flatten(1).float().mean(1)


def match_error(x: torch.Tensor, family: CheckerboardFamily) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest fraction of sign(x) pixels disagreeing with a family member, and that member's side.

    (B, 1, H, W) -> (B,), (B,) long.
    """
    bank, sides = family.members()  # (M, H, W)
    s = torch.where(x[:, 0] >= 0, 1.0, -1.0).flatten(1)  # (B, HW)
    agree = s @ bank.flatten(1).T  # (B, M): HW - 2 * (#mismatches)
    err = (s.shape[1] - agree) / (2 * s.shape[1])
    best, arg = err.min(dim=1)
    return best, sides[arg]


def is_valid(x: torch.Tensor, family: CheckerboardFamily, tol: float = 0.05) -> torch.Tensor:
    """(B,) bool: the sample's sign pattern is a family member up to ``tol`` of its pixels."""
    return match_error(x, family)[0] <= tol


def peak_energy(x: torch.Tensor, family: CheckerboardFamily) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample power on the family's peak bins and its share of non-DC power: (B, 1, H, W) -> (B,), (B,)."""
    power = torch.fft.fft2(x[:, 0].double(), norm="ortho").abs().square()  # (B, H, W)
    power[:, 0, 0] = 0.0  # the mean (DC) is not structure
    mask = family.peak_mask()
    on_peak = power[:, mask].sum(1)
    return on_peak.float(), (on_peak / power.flatten(1).sum(1).clamp_min(1e-12)).float()


def structure_metrics(x: torch.Tensor, family: CheckerboardFamily, reference: torch.Tensor | None = None,
                      tol: float = 0.05) -> dict[str, float]:
    """Scalar structure metrics of a batch of samples; ``reference`` (ground-truth batch) normalises the peak energy."""
    err, _ = match_error(x, family)
    on_peak, in_band = peak_energy(x, family)
    ref = peak_energy(reference, family)[0].mean() if reference is not None else torch.tensor(float(x[0].numel()))
    return {"valid_fraction": float((err <= tol).float().mean()),
            "match_error": float(err.mean()),
            "binariness": float(binariness(x).mean()),
            "peak_energy_ratio": float(on_peak.mean() / ref),
            "in_band_fraction": float(in_band.mean())}
