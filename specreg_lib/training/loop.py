"""A generic, resumable training loop shared by the DDPM toy, EDM fine-tuning and DiffWave.

Contract:
* ``loss_fn(model, x0, cond=None[, generator=g]) -> (B,)`` per-sample losses; the loop takes the mean.
  If ``loss_fn`` accepts a ``generator`` keyword it gets the loop's seeded noise generator.
* ``data`` is either a sampler ``data(batch_size, generator) -> x0 | (x0, cond)`` (drawn with the loop's
  seeded CPU generator: resume is bit-exact) or any iterable of such batches (cycled; resume restarts it).
* The caller seeds and builds the model; the loop seeds everything after that from ``cfg.seed``.
* A checkpoint (model, EMA, optimiser, step, RNG states, config, history) is written atomically every
  ``checkpoint_every`` steps and at the end; calling :func:`train` again with the same path resumes,
  and returns at once when the run is already complete.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .ema import EMA

# Fields that may change between a run and its resumption (e.g. extending ``steps``).
_RESUMABLE_CHANGES = {"steps", "checkpoint_every", "log_every", "progress", "device", "max_nonfinite"}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``grad_clip=0`` and ``ema_decay=0`` switch those features off."""

    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-4
    warmup_steps: int = 0  # linear LR ramp from 0
    lr_schedule: str = "constant"  # "constant" | "cosine" (cosine decay to 0 after warm-up)
    optimizer: str = "adam"  # "adam" | "adamw"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    ema_decay: float = 0.999  # 0 = no EMA copy
    ema_warmup: bool = True
    seed: int = 0
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", or "auto"
    checkpoint_every: int = 0  # 0 = only at the end
    log_every: int = 50
    max_nonfinite: int = 10  # raise after this many skipped (NaN/Inf) steps
    progress: bool = True  # tqdm bar

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError("need steps >= 0, batch_size >= 1, lr > 0, warmup_steps >= 0")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if not 0.0 <= self.ema_decay < 1.0 or self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("need 0 <= ema_decay < 1, grad_clip >= 0, weight_decay >= 0")
        if self.checkpoint_every < 0 or self.log_every < 1 or self.max_nonfinite < 0:
            raise ValueError("need checkpoint_every >= 0, log_every >= 1, max_nonfinite >= 0")

    def lr_at(self, step: int) -> float:
        """Learning rate for 0-based optimiser step ``step``."""
        lr = self.lr * min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else self.lr
        if self.lr_schedule == "cosine" and step >= self.warmup_steps:
            frac = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
            lr = self.lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))
        return lr


@dataclass
class TrainResult:
    """What :func:`train` hands back; ``ema`` is None when EMA is off."""

    model: nn.Module
    ema: nn.Module | None
    step: int
    history: dict[str, list[float]]
    nonfinite_steps: int
    resumed_from: int = 0  # step the run resumed at (0 = fresh)

    @property
    def sampling_model(self) -> nn.Module:
        """The EMA copy when there is one, else the raw model."""
        return self.ema if self.ema is not None else self.model

    @property
    def train_seconds(self) -> float:
        """Total wall time of all optimiser steps, across resumptions."""
        return float(sum(self.history["step_time"]))

    @property
    def seconds_per_step(self) -> float:
        """Median wall time per step (robust to a slow first step or a busy machine)."""
        times = sorted(self.history["step_time"])
        return float(times[len(times) // 2]) if times else float("nan")


class TensorSampler:
    """Random minibatches (with replacement) from in-memory tensors: ``(batch_size, generator) -> batch``."""

    def __init__(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> None:
        if cond is not None and len(cond) != len(x):
            raise ValueError(f"x and cond lengths differ: {len(x)} vs {len(cond)}")
        self.x, self.cond = x, cond

    def __call__(self, batch_size: int, generator: torch.Generator) -> torch.Tensor | tuple:
        idx = torch.randint(len(self.x), (batch_size,), generator=generator)
        return self.x[idx] if self.cond is None else (self.x[idx], self.cond[idx])


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _accepts_generator(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _batches(data: Callable | Iterable, batch_size: int, gen: torch.Generator) -> Iterator:
    if callable(data) and not isinstance(data, Iterator):
        while True:
            yield data(batch_size, gen)
    while True:  # an iterable: cycle through it
        yield from data


def train(model: nn.Module, loss_fn: Callable, data: Callable | Iterable, cfg: TrainConfig,
          ckpt_path: str | os.PathLike | None = None, desc: str = "train",
          meta: dict[str, Any] | None = None,
          callback: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Minimise ``mean(loss_fn(model, x0, cond))`` for ``cfg.steps`` steps; resume from ``ckpt_path`` if it exists.

    ``meta`` (e.g. the model's config as a dict) is stored in the checkpoint; ``callback(step, record)``
    runs after every optimiser step with that step's loss, grad norm, lr and time.
    """
    device = resolve_device(cfg.device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    ema = EMA(model, cfg.ema_decay, cfg.ema_warmup) if cfg.ema_decay > 0 else None
    gens = {"data": torch.Generator().manual_seed(cfg.seed),
            "noise": torch.Generator(device=device).manual_seed(cfg.seed + 1)}
    history: dict[str, list[float]] = {k: [] for k in ("loss", "grad_norm", "lr", "step_time")}
    step = nonfinite = 0
    ckpt_path = Path(ckpt_path) if ckpt_path is not None else None

    if ckpt_path is not None and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, map_location=device)
        _check_resumable(ck["config"], cfg)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if ema is not None:
            ema.load_state_dict(ck["ema"])
        set_rng_state(ck["rng"], gens)
        step, nonfinite, history = ck["step"], ck["nonfinite_steps"], ck["history"]
    else:
        torch.manual_seed(cfg.seed)  # dropout and any loss noise drawn from the global RNG
    resumed_from = step

    def checkpoint() -> None:
        if ckpt_path is not None:
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                "optimizer": opt.state_dict(), "step": step, "nonfinite_steps": nonfinite,
                "rng": rng_state(gens), "config": dataclasses.asdict(cfg), "history": history,
                "meta": meta or {}})

    pass_gen = _accepts_generator(loss_fn)
    batches = _batches(data, cfg.batch_size, gens["data"])
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, disable=not cfg.progress or step >= cfg.steps,
               dynamic_ncols=True)
    while step < cfg.steps:
        t0 = time.perf_counter()
        batch = next(batches)
        x0, cond = batch if isinstance(batch, tuple | list) else (batch, None)
        x0 = x0.to(device, non_blocking=True)
        cond = cond.to(device, non_blocking=True) if cond is not None else None
        lr = cfg.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        kwargs = {"generator": gens["noise"]} if pass_gen else {}
        loss = loss_fn(model, x0, cond, **kwargs).mean()  # (B,) -> ()
        opt.zero_grad(set_to_none=True)
        ok = bool(torch.isfinite(loss))
        grad_norm = float("nan")
        if ok:
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip or float("inf")))
            ok = math.isfinite(grad_norm)
        if ok:
            opt.step()
            if ema is not None:
                ema.update(model)
        else:  # NaN/Inf guard: drop this step's update, count it
            opt.zero_grad(set_to_none=True)
            nonfinite += 1
            if nonfinite > cfg.max_nonfinite:
                checkpoint()
                raise FloatingPointError(f"{nonfinite} non-finite steps (last at step {step}); see {ckpt_path}")
        step += 1
        record = {"loss": float(loss.detach()), "grad_norm": grad_norm, "lr": lr,
                  "step_time": time.perf_counter() - t0}
        for k, v in record.items():
            history[k].append(v)
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            recent = [v for v in history["loss"][-cfg.log_every:] if math.isfinite(v)]
            bar.set_postfix(loss=f"{sum(recent) / max(1, len(recent)):.4f}", skipped=nonfinite)
        if callback is not None:
            callback(step, record)
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            checkpoint()
    bar.close()
    if ckpt_path is not None and (step > resumed_from or not ckpt_path.exists()):
        checkpoint()
    model.eval()
    return TrainResult(model=model, ema=ema.model if ema is not None else None, step=step, history=history,
                       nonfinite_steps=nonfinite, resumed_from=resumed_from)


def _check_resumable(saved: dict[str, Any], cfg: TrainConfig) -> None:
    """Refuse to resume a checkpoint trained with different optimisation settings."""
    now = dataclasses.asdict(cfg)
    diff = {k: (saved.get(k), v) for k, v in now.items()
            if k not in _RESUMABLE_CHANGES and _norm(saved.get(k)) != _norm(v)}
    if diff:
        raise ValueError(f"checkpoint was trained with different settings {diff}; use a new ckpt_path")
    if saved.get("steps", 0) > cfg.steps:
        warnings.warn(f"checkpoint ran to {saved['steps']} steps, more than cfg.steps={cfg.steps}", stacklevel=3)


def _norm(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v
