"""The shared training loop: seeded, resumable, EMA, NaN/Inf guard, atomic checkpoints."""

from .checkpoint import load_checkpoint, save_checkpoint
from .ema import EMA
from .loop import TensorSampler, TrainConfig, TrainResult, resolve_device, train

__all__ = ["EMA", "TensorSampler", "TrainConfig", "TrainResult", "load_checkpoint", "resolve_device",
           "save_checkpoint", "train"]
