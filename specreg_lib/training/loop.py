"""The training loop shared by the DDPM toy, EDM fine-tuning and DiffWave: one process or ``torchrun``.

Contract:
* ``loss_fn(model, x0, cond=None[, generator=g]) -> (B,)`` per-sample losses; the loop takes the mean.
  If ``loss_fn`` accepts a ``generator`` keyword it gets the micro-batch's seeded noise generator.
* ``data`` is a sampler ``data(batch_size, generator) -> x0 | (x0, cond)``, called once per micro-batch with
  that micro-batch's seeded CPU generator (resume is bit-exact), or an iterable of GLOBAL batches (cycled;
  resume restarts it; split into micro-batches by rows, so every rank must iterate the same sequence).
* The caller seeds and builds the model; the loop seeds everything after that from ``cfg.seed`` by the
  shard rule of ``streams.py``: one optimiser step = world_size * accumulate micro-batches, each with its
  own streams, so the result does not depend on how they are spread over ranks and rounds.
* A checkpoint (model, EMA, optimiser, scaler, step, every shard's RNG states, config, history) is written
  atomically by rank 0 every ``checkpoint_every`` steps and at the end; calling :func:`train` again with
  the same path resumes on every rank, and returns at once when the run is already complete.
"""

from __future__ import annotations

import contextlib
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

from . import distributed as D
from .checkpoint import check_plain, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .ema import EMA
from .streams import ShardStreams, legacy_rng

# Fields that may change between a run and its resumption. ``accumulate`` may change as long as
# world_size * accumulate (the shard count, checked separately) stays: the streams are then the same.
_RESUMABLE_CHANGES = {"steps", "checkpoint_every", "log_every", "progress", "device", "max_nonfinite",
                      "eval_every", "accumulate"}
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
_HISTORY_KEYS = ("loss", "grad_norm", "lr", "step_time", "images_per_second")

Evaluate = Callable[[int, nn.Module, nn.Module | None], dict[str, float] | None]


@dataclass
class TrainResult:
    """What :func:`train` hands back; ``ema`` is None when EMA is off; ``model`` is never a DDP wrapper."""

    model: nn.Module
    ema: nn.Module | None
    step: int
    history: dict[str, list]
    nonfinite_steps: int
    resumed_from: int = 0  # step the run resumed at (0 = fresh)
    overflow_steps: int = 0  # fp16 steps GradScaler skipped (not counted in nonfinite_steps)

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
        return _median(self.history["step_time"])

    @property
    def images_per_second(self) -> float:
        """Median global training throughput (images per second over all ranks)."""
        return _median(self.history.get("images_per_second", []))


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    return float(xs[len(xs) // 2]) if xs else float("nan")


class _DDP(nn.parallel.DistributedDataParallel):
    """DDP that forwards unknown attributes to the wrapped module, so losses may read e.g. ``net.sigma_data``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)


def _accepts_generator(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _cycle(data: Iterable) -> Iterator:
    """Cycle an iterable of batches; an exhausted iterator (a generator) cannot be cycled: say so."""
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError("the data iterable yielded no batches (an exhausted iterator cannot be cycled); "
                             "pass a re-iterable (list, DataLoader) or a sampler data(batch_size, generator)")


def _split(batch: Any) -> tuple[torch.Tensor, Any]:
    return batch if isinstance(batch, tuple | list) else (batch, None)


def _autocast(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """The forward pass's autocast context for ``precision``; refuses a dtype this torch cannot autocast to."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with warnings.catch_warnings():  # an unsupported combination warns and disables itself: probe it
        warnings.simplefilter("ignore")
        with torch.autocast(device.type, dtype=dtype):
            ok = torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(device.type) == dtype
    if not ok:
        raise ValueError(f"precision={precision!r} needs {dtype} autocast on {device.type}, which torch "
                         f"{torch.__version__} does not support here; use 'fp32' or 'bf16'")
    return lambda: torch.autocast(device.type, dtype=dtype)


def train(model: nn.Module, loss_fn: Callable, data: Callable | Iterable, cfg: TrainConfig,
          ckpt_path: str | os.PathLike | None = None, desc: str = "train",
          meta: dict[str, Any] | None = None,
          callback: Callable[[int, dict[str, float]], None] | None = None,
          evaluate: Evaluate | None = None, ddp_options: dict[str, Any] | None = None) -> TrainResult:
    """Minimise ``mean(loss_fn(model, x0, cond))`` for ``cfg.steps`` steps; resume from ``ckpt_path`` if it exists.

    ``meta`` (plain data, e.g. the model's config as a dict) is stored in the checkpoint.
    ``callback(step, record)`` runs on every rank after every optimiser step with that step's loss, grad norm,
    lr, time and images/s (identical on all ranks but the times). ``evaluate(step, model, ema_model)`` runs
    on rank 0 alone, in eval mode under ``no_grad``, every ``cfg.eval_every`` steps and at the end; the
    scalars it returns go to ``history["eval"]`` as ``{"step": step, **scalars}``. Under torchrun (or any
    initialised process group) the model is wrapped in DistributedDataParallel(``**ddp_options``).
    """
    device = D.resolve_device(cfg.device)
    D.init_distributed(cfg.device)  # joins torchrun's group; a no-op in one process
    world, rank = D.world_size(), D.rank()
    shards = world * cfg.accumulate
    if cfg.batch_size % shards:
        raise ValueError(f"batch_size={cfg.batch_size} (the global batch per optimiser step) must divide by "
                         f"world_size * accumulate = {world} * {cfg.accumulate} = {shards}")
    micro = cfg.batch_size // shards
    if world > 1 and device.type == "cpu" and D.backend() != "gloo":
        raise ValueError(f"device {device} needs the gloo backend; the process group uses {D.backend()}")
    if evaluate is not None and not cfg.eval_every:
        warnings.warn("an evaluate hook was given but cfg.eval_every=0: it will never run", stacklevel=2)
    autocast = _autocast(cfg.precision, device)
    check_plain(meta or {}, "meta")

    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    ema = EMA(model, cfg.ema_decay, cfg.ema_warmup) if cfg.uses_ema else None
    scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
    # shard m = round * world + rank; for one process with accumulate=1 that is shard 0 alone (the old loop)
    streams = ShardStreams(cfg.seed, [a * world + rank for a in range(cfg.accumulate)], device)
    history: dict[str, list] = {k: [] for k in (*_HISTORY_KEYS, "eval")}
    step = nonfinite = overflow = 0
    ckpt_path = Path(ckpt_path) if ckpt_path is not None else None

    D.barrier()  # every rank looks at the checkpoint file in the same state
    existed = ckpt_path is not None and ckpt_path.exists()
    if existed:
        ck = load_checkpoint(ckpt_path)  # CPU; load_state_dict moves tensors to each parameter's device
        _check_resumable(ck, cfg, world, ckpt_path)
        try:
            model.load_state_dict(ck["model"])
            if ema is not None:
                ema.load_state_dict(ck["ema"])
        except (RuntimeError, KeyError, TypeError) as err:  # torch lists every mismatching tensor: keep 4
            lines = str(err).splitlines()
            summary = "; ".join(x.strip() for x in lines[:4]) + (" ..." if len(lines) > 4 else "")
            raise ValueError(f"checkpoint {ckpt_path} holds another architecture than the model passed to train() "
                             f"({summary}); build the same model (see the checkpoint's meta) or use a new "
                             "ckpt_path") from None
        opt.load_state_dict(ck["optimizer"])
        if scaler is not None:
            scaler.load_state_dict(ck["scaler"])
        rng = ck["rng"]
        streams.load_state_dict(rng["shards"] if "shards" in rng else legacy_rng(rng, device))
        step, nonfinite, overflow = ck["step"], ck["nonfinite_steps"], ck.get("overflow_steps", 0)
        history = {**{k: [] for k in (*_HISTORY_KEYS, "eval")}, **ck["history"]}
    resumed_from = step
    net = model
    if world > 1:
        gpus = None  # DDP on CPU takes no device ids
        if device.type == "cuda":
            gpus = [device.index if device.index is not None else torch.cuda.current_device()]
        net = _DDP(model, device_ids=gpus, **(ddp_options or {}))

    def checkpoint() -> None:
        if ckpt_path is None:
            return
        merged: dict[int, dict] = {}
        for states in D.all_gather_objects(streams.state_dict()):  # collective: every rank takes part
            merged.update(states)
        if D.is_main():
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                "optimizer": opt.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
                "step": step, "nonfinite_steps": nonfinite, "overflow_steps": overflow,
                "rng": {"shards": merged},
                "layout": {"world_size": world, "accumulate": cfg.accumulate, "shards": shards},
                "config": dataclasses.asdict(cfg), "history": history, "meta": meta or {}})

    pass_gen = _accepts_generator(loss_fn)
    sampler = callable(data) and not isinstance(data, Iterator)
    batches = None if sampler else _cycle(data)
    bar = tqdm(total=cfg.steps, initial=step, desc=desc, dynamic_ncols=True,
               disable=not cfg.progress or step >= cfg.steps or not D.is_main())
    while step < cfg.steps:
        t0 = time.perf_counter()
        lr = cfg.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad(set_to_none=True)
        whole = None if sampler else _split(next(batches))  # an iterable yields the global batch
        if whole is not None and shards > 1 and len(whole[0]) != cfg.batch_size:
            raise ValueError(f"the data iterable yielded a batch of {len(whole[0])}; with {shards} micro-batches "
                             f"per step it must yield global batches of batch_size={cfg.batch_size}")
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        data_finite = torch.ones((), dtype=torch.bool, device=device)  # read only when the step fails: no sync
        for i, m in enumerate(streams.shards):
            if sampler:
                x0, cond = _split(data(micro, streams.data[i]))
            elif shards == 1:
                x0, cond = whole
            else:  # rows of shard m in the global batch
                rows = slice(m * micro, (m + 1) * micro)
                x0, cond = whole[0][rows], whole[1][rows] if whole[1] is not None else None
            if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
                raise TypeError(f"the data gave x0 of type {getattr(x0, 'dtype', type(x0).__name__)} at step {step}; "
                                "the loop trains on floating-point tensors: convert it in the sampler/dataset, "
                                "e.g. x.float() / 127.5 - 1 for uint8 images")
            x0 = x0.to(device, non_blocking=True)
            data_finite &= torch.isfinite(x0).all()
            cond = cond.to(device, non_blocking=True) if cond is not None else None
            kwargs = {"generator": streams.noise[i]} if pass_gen else {}
            # DDP all-reduces gradients in the last round only; the others accumulate locally
            sync = net.no_sync() if world > 1 and i < cfg.accumulate - 1 else contextlib.nullcontext()
            with sync, streams.global_rng(i):
                with autocast():
                    per_sample = loss_fn(net, x0, cond, **kwargs)  # (micro,)
                if per_sample.dtype in (torch.float16, torch.bfloat16):
                    per_sample = per_sample.float()
                loss = per_sample.mean()  # (micro,) -> ()
                loss_sum += loss.detach()
                # even a non-finite loss is backpropagated (DDP needs every rank in the all-reduce);
                # the step is then skipped below, on every rank alike
                scaled = loss / cfg.accumulate if cfg.accumulate > 1 else loss
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss_value = float(D.reduce_sum(loss_sum)) / shards  # mean over all micro-batches of all ranks
        ok = math.isfinite(loss_value)  # the same on every rank: they all skip together
        grad_norm = float("nan")
        if ok:
            if scaler is not None:
                scaler.unscale_(opt)
            # after DDP's all-reduce the gradients, hence this norm, are the same on every rank
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip or float("inf")))
            if math.isfinite(grad_norm) or scaler is not None:
                if scaler is not None:
                    scaler.step(opt)  # skips the update itself when unscale_ found Inf/NaN
                    scaler.update()
                else:
                    opt.step()
                if math.isfinite(grad_norm):
                    if ema is not None:
                        ema.update(model, cfg.ema_beta_at(step))
                else:  # fp16 overflow: GradScaler lowered the scale; not a NaN failure
                    overflow += 1
            else:
                ok = False
        if not ok:  # NaN/Inf guard: drop this step's update, count it
            opt.zero_grad(set_to_none=True)
            nonfinite += 1
            if nonfinite > cfg.max_nonfinite:
                checkpoint()
                bad_data = bool(D.reduce_sum((~data_finite).to(torch.float64)))  # on any rank
                where = ("the DATA: a micro-batch of x0 itself holds NaN/Inf; clean the dataset/sampler"
                         if bad_data else
                         "the MODEL: the data was finite but the loss or its gradient was not; lower lr, keep "
                         "grad_clip on, try precision='fp32', or check the net")
                raise FloatingPointError(
                    f"{nonfinite} non-finite steps, more than max_nonfinite={cfg.max_nonfinite}; the last, step "
                    f"{step} (loss {loss_value}, grad norm {grad_norm}), came from {where}. The checkpoint "
                    f"{ckpt_path} holds the state before it")
        step += 1
        step_time = time.perf_counter() - t0
        record = {"loss": loss_value, "grad_norm": grad_norm, "lr": lr, "step_time": step_time,
                  "images_per_second": cfg.batch_size / step_time}
        for k, v in record.items():
            history[k].append(v)
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            recent = [v for v in history["loss"][-cfg.log_every:] if math.isfinite(v)]
            extra = {"overflow": overflow} if scaler is not None else {}
            bar.set_postfix(loss=f"{sum(recent) / max(1, len(recent)):.4f}", skipped=nonfinite,
                            img_s=f"{_median(history['images_per_second'][-cfg.log_every:]):.1f}", **extra)
        if callback is not None:
            callback(step, record)
        if evaluate is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
            if D.is_main():
                history["eval"].append(_evaluate(evaluate, step, model, ema))
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            checkpoint()
    bar.close()
    if ckpt_path is not None and (step > resumed_from or not existed):
        checkpoint()
    D.barrier()  # the checkpoint is on disk before any rank returns
    model.eval()
    return TrainResult(model=model, ema=ema.model if ema is not None else None, step=step, history=history,
                       nonfinite_steps=nonfinite, resumed_from=resumed_from, overflow_steps=overflow)


def _evaluate(evaluate: Evaluate, step: int, model: nn.Module, ema: EMA | None) -> dict[str, float]:
    """Call the hook in eval mode without gradients, then put the model back into training mode."""
    model.eval()
    try:
        with torch.no_grad():
            scalars = evaluate(step, model, ema.model if ema is not None else None) or {}
    finally:
        model.train()
    return {"step": step, **{k: float(v) for k, v in scalars.items()}}


def _check_resumable(ck: dict[str, Any], cfg: TrainConfig, world: int, path: Path) -> None:
    """Refuse to resume a checkpoint trained with other settings or another shard layout."""
    layout = ck.get("layout", {"world_size": 1, "accumulate": 1, "shards": 1})  # the old loop had one shard
    shards = world * cfg.accumulate
    if layout["shards"] != shards:
        raise ValueError(
            f"{path} was trained with {layout['shards']} micro-batches per step (world_size {layout['world_size']}"
            f" x accumulate {layout['accumulate']}); this run has {shards} (world_size {world} x accumulate "
            f"{cfg.accumulate}), so its data and noise streams would differ. Resume with world_size x "
            f"accumulate = {layout['shards']}, or use a new ckpt_path")
    saved, now = ck["config"], dataclasses.asdict(cfg)
    diff = {k: (saved.get(k, _DEFAULTS[k]), v) for k, v in now.items()
            if k not in _RESUMABLE_CHANGES and _norm(saved.get(k, _DEFAULTS[k])) != _norm(v)}
    if diff:
        raise ValueError(f"checkpoint was trained with different settings {diff}; use a new ckpt_path")
    if saved.get("steps", 0) > cfg.steps:
        warnings.warn(f"checkpoint ran to {saved['steps']} steps, more than cfg.steps={cfg.steps}", stacklevel=3)


def _norm(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v
