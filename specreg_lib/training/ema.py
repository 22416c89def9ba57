"""Exponential moving average of a model's weights (Polyak averaging), as used by DDPM/EDM samplers."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``ema = decay * ema + (1 - decay) * model`` after every optimiser step.

    With ``warmup=True`` the decay is ``min(decay, (1 + n) / (10 + n))`` after n updates, so early
    averages are not dominated by the random initialisation. ``update(model, decay=beta)`` overrides the
    rule for one update (the loop's EDM half-life mode passes ``TrainConfig.ema_beta_at(step)``).
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """Decay used at the next update."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        """Move the average towards ``model``'s current parameters; buffers are copied."""
        d = self.current_decay() if decay is None else decay
        for p_ema, p in zip(self.model.parameters(), model.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])
