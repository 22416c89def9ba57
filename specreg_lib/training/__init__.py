"""The shared training loop: seeded shards, gradient accumulation, DDP under torchrun, mixed precision,
EMA (per-step decay or EDM half-life), NaN/Inf guard, atomic data-only checkpoints, bit-exact resume.

``specreg_lib.training.distributed`` has the rest of the process-group helpers (rank, world_size, barrier,
reduce_mean, ...)."""

from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import init_distributed, is_main, resolve_device
from .ema import EMA
from .loop import TrainResult, train
from .streams import shard_seed

__all__ = ["EMA", "TrainConfig", "TrainResult", "distributed", "init_distributed", "is_main", "load_checkpoint",
           "resolve_device", "save_checkpoint", "shard_seed", "train"]
