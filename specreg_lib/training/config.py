"""The training loop's settings: one frozen, validated dataclass, saved as a dict in every checkpoint."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``grad_clip=0`` and ``ema_decay=0`` switch those features off.

    ``batch_size`` is the GLOBAL batch of one optimiser step: all ranks times all ``accumulate`` rounds.
    The experiment layer hashes these fields by name: rename none, and give new ones a neutral default.
    """

    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-4
    warmup_steps: int = 0  # linear LR ramp from 0
    lr_schedule: str = "constant"  # "constant" | "cosine" (cosine decay to 0 after warm-up)
    optimizer: str = "adam"  # "adam" | "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    ema_decay: float = 0.999  # per-step EMA decay; 0 = off (or use ema_halflife_kimg)
    ema_warmup: bool = True
    seed: int = 0
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", or "auto" (under torchrun "cuda"/"auto" -> cuda:LOCAL_RANK)
    checkpoint_every: int = 0  # 0 = only at the end
    log_every: int = 50
    max_nonfinite: int = 10  # raise after this many skipped (NaN/Inf) steps
    progress: bool = True  # tqdm bar
    accumulate: int = 1  # gradient-accumulation rounds per optimiser step
    precision: str = "fp32"  # "fp32" | "bf16" (autocast) | "fp16" (autocast + GradScaler)
    ema_halflife_kimg: float = 0.0  # EDM's EMA half-life in thousands of images; 0 = off
    ema_rampup_ratio: float | None = None  # EDM: half-life <= ratio * images seen so far; None = off
    lr_rampup_kimg: float = 0.0  # EDM's linear LR ramp over this many thousand images; 0 = off
    eval_every: int = 0  # run the evaluation hook every this many steps and at the end; 0 = never

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        # One rule for every number: the right type and finite (a NaN slips past every `< 0` check below).
        for f in fields(self):
            v = getattr(self, f.name)
            kind = int if f.type == "int" else float if f.type.startswith("float") else None
            if kind is None or v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or (kind is int and not isinstance(v, int)):
                raise TypeError(f"TrainConfig.{f.name} must be {'an int' if kind is int else 'a number'}, "
                                f"got {v!r} ({type(v).__name__})")
            if not math.isfinite(v):
                raise ValueError(f"TrainConfig.{f.name} must be finite, got {v!r}; use 0 to switch off "
                                 f"grad_clip/ema_decay/eval_every, or a finite value")
        if len(self.betas) != 2 or not all(isinstance(b, int | float) and 0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError("need steps >= 0, batch_size >= 1, lr > 0, warmup_steps >= 0")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if not 0.0 <= self.ema_decay < 1.0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("need 0 <= ema_decay < 1, grad_clip >= 0, weight_decay >= 0")
        if self.checkpoint_every < 0 or self.log_every < 1 or self.max_nonfinite < 0 or self.eval_every < 0:
            raise ValueError("need checkpoint_every >= 0, log_every >= 1, max_nonfinite >= 0, eval_every >= 0")
        if self.accumulate < 1 or self.batch_size % self.accumulate:
            raise ValueError(f"accumulate must be >= 1 and divide batch_size (the global batch per optimiser "
                             f"step); got batch_size={self.batch_size}, accumulate={self.accumulate}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.ema_halflife_kimg < 0 or self.lr_rampup_kimg < 0:
            raise ValueError("need ema_halflife_kimg >= 0 and lr_rampup_kimg >= 0")
        if self.ema_decay > 0 and self.ema_halflife_kimg > 0:
            raise ValueError(f"two EMA rules are on: ema_decay={self.ema_decay} (per step) and ema_halflife_kimg="
                             f"{self.ema_halflife_kimg} (EDM half-life); set ema_decay=0 to use the half-life")
        if self.ema_rampup_ratio is not None and (self.ema_rampup_ratio <= 0 or self.ema_halflife_kimg == 0):
            raise ValueError("ema_rampup_ratio needs ema_halflife_kimg > 0 and must be > 0 (or None = off)")
        if self.lr_rampup_kimg > 0 and self.warmup_steps > 0:
            raise ValueError(f"two LR ramps are on: warmup_steps={self.warmup_steps} (steps) and lr_rampup_kimg="
                             f"{self.lr_rampup_kimg} (images, EDM); keep one")

    @property
    def uses_ema(self) -> bool:
        return self.ema_decay > 0 or self.ema_halflife_kimg > 0

    def images_before(self, step: int) -> int:
        """Training images seen before 0-based optimiser step ``step`` (EDM's ``cur_nimg``)."""
        return step * self.batch_size

    def lr_at(self, step: int) -> float:
        """Learning rate for 0-based optimiser step ``step``.

        ``lr_rampup_kimg`` follows EDM: lr * min(cur_nimg / (1000 * lr_rampup_kimg), 1) with cur_nimg the
        images seen BEFORE the step, so step 0 runs at lr 0 (Adam's moments still see its gradient).
        """
        lr = self.lr * min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else self.lr
        if self.lr_schedule == "cosine" and step >= self.warmup_steps:
            frac = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
            lr = self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
        if self.lr_rampup_kimg:
            lr *= min(self.images_before(step) / (self.lr_rampup_kimg * 1e3), 1.0)
        return lr

    def ema_beta_at(self, step: int) -> float | None:
        """EMA decay applied after 0-based step ``step`` in half-life mode (None otherwise; EMA uses ema_decay).

        EDM: beta = 0.5 ** (batch_size / halflife_nimg), halflife_nimg = 1000 * ema_halflife_kimg, capped at
        ema_rampup_ratio * cur_nimg when the ratio is set (cur_nimg = images before the step; floor 1e-8).
        """
        if not self.ema_halflife_kimg:
            return None
        halflife_nimg = self.ema_halflife_kimg * 1e3
        if self.ema_rampup_ratio is not None:
            halflife_nimg = min(halflife_nimg, self.images_before(step) * self.ema_rampup_ratio)
        return 0.5 ** (self.batch_size / max(halflife_nimg, 1e-8))
