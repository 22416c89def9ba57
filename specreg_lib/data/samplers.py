"""Samplers: the training loop's data contract ``data(batch_size, generator) -> x0 | (x0, cond)``."""

from __future__ import annotations

import torch


class TensorSampler:
    """Random minibatches (with replacement) from in-memory tensors: ``(batch_size, generator) -> batch``.

    Every draw comes from the generator passed in, so the loop's seeded per-shard generators make the stream
    reproducible and resumable.
    """

    def __init__(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> None:
        if cond is not None and len(cond) != len(x):
            raise ValueError(f"x and cond lengths differ: {len(x)} vs {len(cond)}")
        self.x, self.cond = x, cond

    def __call__(self, batch_size: int, generator: torch.Generator) -> torch.Tensor | tuple:
        idx = torch.randint(len(self.x), (batch_size,), generator=generator)  # (batch_size,)
        return self.x[idx] if self.cond is None else (self.x[idx], self.cond[idx])
