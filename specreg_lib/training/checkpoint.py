"""Checkpoints: everything needed to resume a run bit-exactly, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_path


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Global torch (CPU, and CUDA when present) RNG states plus named generators' states."""
    state: dict[str, Any] = {"torch_cpu": torch.get_rng_state(),
                             "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """``torch.save`` to a temp file beside ``path``, then rename: a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (our own files, so full unpickling is allowed)."""
    return torch.load(path, map_location=map_location, weights_only=False)
