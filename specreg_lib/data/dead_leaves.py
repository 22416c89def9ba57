"""A procedural natural-image model: Matheron's dead leaves with power-law disc radii (Lee, Mumford & Huang 2001).

Why: a stand-in with *known* statistics beside the photo patches. Opaque discs fall on the plane; a pixel shows the
colour of the first disc (front to back) that covers it. With radius density p(r) ~ r^-alpha, alpha = 3 (Lee, Mumford
& Huang, "Occlusion models for natural images", IJCV 2001, section 3) the model is scale invariant between r_min and
r_max, so its power spectrum falls close to f^-2 like natural images, and it has the occlusion edges that Gaussian
1/f noise lacks: images are piecewise constant.

What is drawn (docs/image_standins.md has the measurements):
* radii in [r_min, r_max] pixels with density ~ r^-alpha; centres uniform. Only discs that can touch the image are
  drawn: a disc of radius r touches the H x W window only if its centre lies in the window grown by r on each side,
  so radius and centre are drawn jointly from r^-alpha (H + 2r)(W + 2r) and then uniformly in the grown window. That
  is the stationary (infinite-plane) process seen through the window, exactly, with no edge effects; the weight is a
  mixture of three power laws, each sampled by its inverse CDF.
* colours i.i.d. per disc: ``color="rgb"`` three independent channels uniform in [-1, 1]; ``"gray"`` one uniform
  grey level in [-1, 1] repeated on the three channels.
* discs are stacked front to back until every pixel centre is covered, or ``max_discs`` per image are drawn; pixels
  still uncovered then show a background leaf (one more colour per image, as if a disc larger than the image lay
  behind all others).

Exact check (Matheron's covariance formula; used by tests/test_dead_leaves.py): two points a distance d apart lie in
the same visible leaf with probability g(d) / (2 E|D| - g(d)), g(d) = E|D cap (D + d)| (mean disc overlap area), so
their colour covariance is var(colour) times that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InputError

COLORS = ("rgb", "gray")


class DeadLeavesError(InputError, ValueError):
    """A bad dead-leaves option; the message names it and the accepted range."""


def _power_law_mass(k: float, a: float, b: float) -> float:
    """Integral of r^-k over [a, b]."""
    return math.log(b / a) if k == 1 else (b ** (1 - k) - a ** (1 - k)) / (1 - k)


def _power_law_inverse_cdf(k: float, a: float, b: float, u: torch.Tensor) -> torch.Tensor:
    """Radii with density ~ r^-k on [a, b] from uniforms u in [0, 1) (inverse CDF)."""
    if k == 1:
        return a * (b / a) ** u
    return (a ** (1 - k) + u * (b ** (1 - k) - a ** (1 - k))) ** (1 / (1 - k))


@dataclass(frozen=True)
class DeadLeaves:
    """Dead-leaves images (B, 3, size, size) in [-1, 1]; a training-loop sampler ``(batch_size, generator)``.

    ``r_min``/``r_max``: disc radii in pixels (``r_max=None``: the image side); ``alpha``: radius density exponent
    (3 = scale invariant); ``color``: "rgb" or "gray"; ``max_discs``: discs per image at most; ``chunk``: discs drawn
    per image per rendering step (speed only; the images depend on it because the draws are interleaved).
    """

    size: int = 32
    r_min: float = 1.0
    r_max: float | None = None
    alpha: float = 3.0
    color: str = "rgb"
    max_discs: int = 4096
    chunk: int = 32

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 2:
            raise DeadLeavesError(f"size must be an int >= 2 pixels, got {self.size!r}")
        r_max = float(self.size) if self.r_max is None else self.r_max
        if not (math.isfinite(self.r_min) and self.r_min > 0 and math.isfinite(r_max) and r_max > self.r_min):
            raise DeadLeavesError(f"need 0 < r_min < r_max (pixels, finite), got r_min={self.r_min!r}, "
                                  f"r_max={self.r_max!r}; e.g. r_min=1, r_max=None (the image side)")
        if not math.isfinite(self.alpha):
            raise DeadLeavesError(f"alpha must be finite (3 = scale-invariant dead leaves), got {self.alpha!r}")
        if self.color not in COLORS:
            raise DeadLeavesError(f"color must be one of {COLORS}, got {self.color!r}")
        for name in ("max_discs", "chunk"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DeadLeavesError(f"{name} must be an int >= 1, got {v!r}")

    @property
    def radius_range(self) -> tuple[float, float]:
        """(r_min, r_max) in pixels, ``r_max=None`` resolved to the image side."""
        return float(self.r_min), float(self.size) if self.r_max is None else float(self.r_max)

    def _discs(self, batch_size: int, generator: torch.Generator | None,
               device: torch.device) -> tuple[torch.Tensor, ...]:
        """One chunk of discs per image, front to back: radius, centre y, centre x (B, n) and colour (B, n, 3)."""
        a, b = self.radius_range
        n, L = self.chunk, float(self.size)
        # r^-alpha (L + 2r)^2 = L^2 r^-alpha + 4L r^(1-alpha) + 4 r^(2-alpha): a mixture of three power laws
        ks = (self.alpha, self.alpha - 1, self.alpha - 2)
        mass = torch.tensor([c * _power_law_mass(k, a, b) for c, k in zip((L * L, 4 * L, 4.0), ks, strict=True)],
                            dtype=torch.float64, device=device)
        u = torch.rand(batch_size, n, 4, generator=generator, dtype=torch.float64, device=device)
        which = torch.searchsorted(mass.cumsum(0) / mass.sum(), u[..., 0].contiguous(), right=True).clamp_max(2)
        r = torch.zeros(batch_size, n, dtype=torch.float64, device=device)
        for i, k in enumerate(ks):
            r = torch.where(which == i, _power_law_inverse_cdf(k, a, b, u[..., 1]), r)
        cy = -r + u[..., 2] * (L + 2 * r)  # uniform in the window grown by r
        cx = -r + u[..., 3] * (L + 2 * r)
        if self.color == "rgb":
            col = torch.rand(batch_size, n, 3, generator=generator, device=device) * 2 - 1
        else:
            col = (torch.rand(batch_size, n, 1, generator=generator, device=device) * 2 - 1).expand(-1, -1, 3)
        return r, cy, cx, col

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, size, size) float32 in [-1, 1], reproducible from ``generator``, on the generator's device (CPU
        without one; a CUDA generator renders on that GPU, with CUDA's random stream, so other images than on CPU)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise DeadLeavesError(f"batch_size must be an int >= 0, got {batch_size!r}")
        B, L = batch_size, self.size
        P = L * L
        dev = generator.device if generator is not None else torch.device("cpu")
        background = torch.rand(B, 1, 3, generator=generator, device=dev) * 2 - 1  # the leaf behind all others
        if self.color == "gray":
            background = background[..., :1].expand(-1, -1, 3)
        out = background.expand(B, P, 3).clone().reshape(B * P, 3)
        centres = torch.arange(L, dtype=torch.float64, device=dev) + 0.5  # pixel (i, j) sits at (i + 1/2, j + 1/2)
        todo = torch.arange(B * P, device=dev)  # flat (image, pixel) indices not yet covered
        drawn = 0
        while todo.numel() and drawn < self.max_discs:
            r, cy, cx, col = self._discs(B, generator, dev)
            n = min(self.chunk, self.max_discs - drawn)
            drawn += self.chunk
            # (y - cy)^2 + (x - cx)^2 <= r^2 splits into a row table and a column table, each (B, L, n)
            rows = ((centres[None, :, None] - cy[:, None, :n]).square() - r[:, None, :n].square()).float()
            cols = (centres[None, :, None] - cx[:, None, :n]).square().float()
            img, pix = todo // P, todo % P
            if todo.numel() > B * P // 3:  # most pixels left: test them all at once, then keep the ones left
                hit = (rows[:, :, None, :] + cols[:, None, :, :] <= 0).reshape(B * P, n)  # (B*P, n)
                hit = hit if todo.numel() == B * P else hit[todo]
            else:  # few left: gather their rows of the tables
                hit = rows[img, pix // L] + cols[img, pix % L] <= 0  # (M, n): disc k covers the pixel
            covered = hit.any(1)
            first = hit.to(torch.uint8).argmax(1)  # the frontmost covering disc of this chunk
            out[todo[covered]] = col[img[covered], first[covered]]
            todo = todo[~covered]
        return out.reshape(B, L, L, 3).permute(0, 3, 1, 2).contiguous()

    __call__ = sample


def same_leaf_probability(d: torch.Tensor, r_min: float, r_max: float, alpha: float = 3.0,
                          n_grid: int = 4096) -> torch.Tensor:
    """P(two points a distance d apart show the same leaf) for discs with radius density ~ r^-alpha.

    Matheron's formula for the dead leaves model: g(d) / (2 E|D| - g(d)) with g(d) = E|D cap (D + d)|, the mean
    overlap area of a disc and its translate by d (lens area 2 r^2 acos(d/2r) - (d/2) sqrt(4r^2 - d^2) for d < 2r);
    the expectations are integrals over r, here on a log-spaced grid (trapezoid rule, float64).
    """
    r = torch.logspace(math.log10(r_min), math.log10(r_max), n_grid, dtype=torch.float64)
    w = r ** -alpha  # unnormalised density; the ratio does not need the normalisation
    d = torch.as_tensor(d, dtype=torch.float64).reshape(-1, 1)
    x = (d / (2 * r)).clamp(max=1.0)
    lens = 2 * r ** 2 * torch.acos(x) - d * r * torch.sqrt(1 - x ** 2)  # (len(d), n_grid); 0 when d >= 2r
    g = torch.trapezoid(lens * w, r, dim=1)
    area = torch.trapezoid(math.pi * r ** 2 * w, r)
    return g / (2 * area - g)
