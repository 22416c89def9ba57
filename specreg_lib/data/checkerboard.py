"""The checkerboard toy's data (paper section 5.1): a documented family of 64x64 checkerboards.

The paper only says "64x64 grayscale checkerboards whose energy sits at a few high spatial frequencies".
Our family (:class:`CheckerboardFamily`): square cells of side ``s`` pixels, ``s`` drawn uniformly from
``sides`` (default 2 or 4, i.e. periods 4 and 8 pixels), and an independent row/column offset each uniform
in {0, ..., 2s - 1}; pixel (i, j) = +1 if floor((i + o_y)/s) + floor((j + o_x)/s) is even, else -1.
Sides divide the image size, so every image is exactly periodic: its 2-D spectrum is zero except at the
odd harmonics (k, l) * N/(2s), k, l odd (side 2: the four bins (+-16, +-16) at N=64; side 4: 16 bins).
The family has 2 s^2 distinct images per side (40 for sides (2, 4)).


Its structure metrics live in ``specreg_lib.metrics.checkerboard``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CheckerboardFamily:
    """Square checkerboards in {-1, +1}, cell side drawn from ``sides``, random row/column offset."""

    size: int = 64
    sides: tuple[int, ...] = (2, 4)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sides", tuple(int(s) for s in self.sides))
        if not self.sides or any(s < 1 or self.size % (2 * s) for s in self.sides):
            raise ValueError(f"every side must be >= 1 with 2*side dividing size={self.size}; got {self.sides}")

    def render(self, side: torch.Tensor, off_y: torch.Tensor, off_x: torch.Tensor) -> torch.Tensor:
        """Images for per-sample cell sides and offsets, each (B,) long -> (B, 1, size, size) in {-1, +1}."""
        idx = torch.arange(self.size)
        rows = torch.div(idx[None] + off_y[:, None], side[:, None], rounding_mode="floor")  # (B, size)
        cols = torch.div(idx[None] + off_x[:, None], side[:, None], rounding_mode="floor")  # (B, size)
        parity = (rows[:, :, None] + cols[:, None, :]) % 2  # (B, size, size)
        return (1.0 - 2.0 * parity.float())[:, None]

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``batch_size`` random members: (B, 1, size, size) float32 in {-1, +1}; a training-loop sampler."""
        sides = torch.tensor(self.sides)
        side = sides[torch.randint(len(sides), (batch_size,), generator=generator)]
        u = torch.rand(2, batch_size, generator=generator)
        off = (u * (2 * side)).long()  # uniform in {0, ..., 2 side - 1}
        return self.render(side, off[0], off[1])

    __call__ = sample  # TrainConfig sampler protocol: (batch_size, generator) -> x0

    def members(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every (side, offset) image: (M, size, size) in {-1, +1} and their sides (M,)."""
        side, oy, ox = zip(*[(s, y, x) for s in self.sides for y in range(2 * s) for x in range(2 * s)],
                           strict=True)
        side_t = torch.tensor(side)
        return self.render(side_t, torch.tensor(oy), torch.tensor(ox))[:, 0], side_t

    def peak_mask(self) -> torch.Tensor:
        """(size, size) bool: 2-D FFT bins (torch.fft.fft2 order) where any family member has power."""
        power = torch.fft.fft2(self.members()[0], norm="ortho").abs().square().sum(0)  # (size, size)
        return power > 1e-6 * power.max()
