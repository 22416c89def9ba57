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
* Resume is bit-exact also across processes: TorchScript functions inside a model (LMNT's DiffWave ``silu``) run
  unoptimised, since the JIT's profiling executor changes their backward after its first calls in a process.
* A run is not trained when most of its steps were skipped: more than half of the steps of one call (or of the
  whole run) skipped as non-finite raises :class:`NonFiniteSteps`, and the final checkpoint is not written.
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
from typing import Any, NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import InputError
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


class NonFiniteSteps(InputError, FloatingPointError):
    """Too many optimiser steps were skipped as non-finite (NaN/Inf loss or gradient): nothing trustworthy trained."""


class ResumeError(InputError, ValueError):
    """A checkpoint that cannot be resumed: another configuration or shard layout, or inconsistent contents."""


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


class _Layout(NamedTuple):
    """How one optimiser step is spread: ``shards = world * accumulate`` micro-batches of ``micro`` samples."""

    world: int
    rank: int
    shards: int
    micro: int


def _layout(cfg: TrainConfig, device: torch.device) -> _Layout:
    """This process's place in the shard rule; refuses a global batch that does not split evenly."""
    world, rank = D.world_size(), D.rank()
    shards = world * cfg.accumulate
    if cfg.batch_size % shards:
        raise ValueError(f"batch_size={cfg.batch_size} (the global batch per optimiser step) must divide by "
                         f"world_size * accumulate = {world} * {cfg.accumulate} = {shards}")
    if world > 1 and device.type == "cpu" and D.backend() != "gloo":
        raise ValueError(f"device {device} needs the gloo backend; the process group uses {D.backend()}")
    return _Layout(world, rank, shards, cfg.batch_size // shards)


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
    layout = _layout(cfg, device)
    if evaluate is not None and not cfg.eval_every:
        warnings.warn("an evaluate hook was given but cfg.eval_every=0: it will never run", stacklevel=2)
    autocast = _autocast(cfg.precision, device)
    check_plain(meta or {}, "meta")

    trainer = _Trainer(model, loss_fn, data, cfg, device, layout, autocast,
                       Path(ckpt_path) if ckpt_path is not None else None, meta or {})
    existed = trainer.resume()
    resumed_from, skipped_before = trainer.step, trainer.nonfinite
    trainer.wrap_ddp(ddp_options or {})
    bar = tqdm(total=cfg.steps, initial=trainer.step, desc=desc, dynamic_ncols=True,
               disable=not cfg.progress or trainer.step >= cfg.steps or not D.is_main())
    # A TorchScript function (LMNT's DiffWave silu) is run by the JIT's profiling executor: after its first calls in
    # a process it switches to an optimised graph whose backward differs in the last bit, so a resumed process
    # would train its first steps with other numerics than an uninterrupted one. Unoptimised, it runs op by op as
    # eager code does, whatever the process did before: resume is bit-exact. (No effect on models without JIT.)
    with torch.jit.optimized_execution(False):
        while trainer.step < cfg.steps:
            record = trainer.optimisation_step()
            step = trainer.step
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                bar.set_postfix(**trainer.progress_postfix())
            if callback is not None:
                callback(step, record)
            if evaluate is not None and cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
                if D.is_main():
                    trainer.history["eval"].append(_evaluate(evaluate, step, model, trainer.ema))
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                trainer.checkpoint()
    bar.close()
    trainer.check_trained(resumed_from, skipped_before)  # before the final checkpoint: a failed run is not complete
    if trainer.step > resumed_from or not existed:
        trainer.checkpoint()
    D.barrier()  # the checkpoint is on disk before any rank returns
    model.eval()
    return TrainResult(model=model, ema=trainer.ema.model if trainer.ema is not None else None, step=trainer.step,
                       history=trainer.history, nonfinite_steps=trainer.nonfinite, resumed_from=resumed_from,
                       overflow_steps=trainer.overflow)


class _Trainer:
    """One call of :func:`train`: the resumable state (what a checkpoint holds) and the parts that move it on."""

    def __init__(self, model: nn.Module, loss_fn: Callable, data: Callable | Iterable, cfg: TrainConfig,
                 device: torch.device, layout: _Layout, autocast: Callable[[], contextlib.AbstractContextManager],
                 ckpt_path: Path | None, meta: dict[str, Any]):
        self.cfg, self.device, self.layout, self.autocast = cfg, device, layout, autocast
        self.ckpt_path, self.meta = ckpt_path, meta
        self.loss_fn, self.pass_generator = loss_fn, _accepts_generator(loss_fn)
        self.sampler = data if callable(data) and not isinstance(data, Iterator) else None
        self.batches = None if self.sampler is not None else _cycle(data)  # an iterable of global batches
        model.to(device).train()
        self.model = self.net = model  # ``net`` becomes the DDP wrapper under torchrun
        self.params = [p for p in model.parameters() if p.requires_grad]
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        self.opt = opt_cls(self.params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.ema = EMA(model, cfg.ema_decay, cfg.ema_warmup) if cfg.uses_ema else None
        self.scaler = torch.amp.GradScaler(device.type) if cfg.precision == "fp16" else None
        # shard m = round * world + rank; for one process with accumulate=1 that is shard 0 alone (the old loop)
        self.streams = ShardStreams(cfg.seed, [a * layout.world + layout.rank for a in range(cfg.accumulate)],
                                    device)
        self.history: dict[str, list] = {k: [] for k in (*_HISTORY_KEYS, "eval")}
        self.step = self.nonfinite = self.overflow = 0
        self.skipped_bad_data = 0  # skipped steps of this call whose data itself was non-finite

    # ------------------------------------------------------------------ resume, DDP, checkpoint

    def resume(self) -> bool:
        """Restore model, EMA, optimiser, scaler, RNG streams, counters and history from the checkpoint, if there
        is one (on every rank); True when there was."""
        D.barrier()  # every rank looks at the checkpoint file in the same state
        path = self.ckpt_path
        if path is None or not path.exists():
            return False
        ck = load_checkpoint(path)  # CPU; load_state_dict moves tensors to each parameter's device
        _check_contents(ck, path)
        _check_resumable(ck, self.cfg, self.layout.world, path)
        try:
            self.model.load_state_dict(ck["model"])
            if self.ema is not None:
                self.ema.load_state_dict(ck["ema"])
        except (RuntimeError, KeyError, TypeError) as err:  # torch lists every mismatching tensor: keep 4
            lines = str(err).splitlines()
            summary = "; ".join(x.strip() for x in lines[:4]) + (" ..." if len(lines) > 4 else "")
            raise ResumeError(f"checkpoint {path} holds another architecture than the model passed to train() "
                             f"({summary}); build the same model (see the checkpoint's meta) or use a new "
                             "ckpt_path") from None
        try:
            self.opt.load_state_dict(ck["optimizer"])
            if self.scaler is not None:
                self.scaler.load_state_dict(ck["scaler"])
            rng = ck["rng"]
            self.streams.load_state_dict(rng["shards"] if "shards" in rng else legacy_rng(rng, self.device))
        except (ValueError, KeyError, TypeError, RuntimeError, AttributeError) as err:
            raise ResumeError(f"checkpoint {path} holds a malformed optimiser, scaler or RNG state "
                              f"({type(err).__name__}: {err}); delete it (or its run folder) to start over") from None
        self.step, self.nonfinite, self.overflow = ck["step"], ck["nonfinite_steps"], ck.get("overflow_steps", 0)
        self.history = {**{k: [] for k in (*_HISTORY_KEYS, "eval")}, **ck["history"]}
        return True

    def wrap_ddp(self, ddp_options: dict[str, Any]) -> None:
        """Under a process group of more than one rank, train through DistributedDataParallel."""
        if self.layout.world == 1:
            return
        gpus = None  # DDP on CPU takes no device ids
        if self.device.type == "cuda":
            gpus = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
        self.net = _DDP(self.model, device_ids=gpus, **ddp_options)

    def checkpoint(self) -> None:
        """Rank 0 writes the state atomically; a collective (every shard's RNG states are gathered)."""
        if self.ckpt_path is None:
            return
        merged: dict[int, dict] = {}
        for states in D.all_gather_objects(self.streams.state_dict()):  # collective: every rank takes part
            merged.update(states)
        if D.is_main():
            cfg, ema, scaler = self.cfg, self.ema, self.scaler
            save_checkpoint(self.ckpt_path, {
                "model": self.model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                "optimizer": self.opt.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
                "step": self.step, "nonfinite_steps": self.nonfinite, "overflow_steps": self.overflow,
                "rng": {"shards": merged},
                "layout": {"world_size": self.layout.world, "accumulate": cfg.accumulate,
                           "shards": self.layout.shards},
                "config": dataclasses.asdict(cfg), "history": self.history, "meta": self.meta})

    # ------------------------------------------------------------------ one optimiser step

    def optimisation_step(self) -> dict[str, float]:
        """Accumulate the gradients of every micro-batch, then update (or skip a non-finite step); the step's
        record, appended to the history."""
        t0 = time.perf_counter()
        lr = self.cfg.lr_at(self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss_value, data_finite = self._accumulate_gradients()
        ok = math.isfinite(loss_value)  # the same on every rank: they all skip together
        grad_norm = float("nan")
        if ok:
            ok, grad_norm = self._update()
        if not ok:
            self._skip_nonfinite(loss_value, grad_norm, data_finite)
        self.step += 1
        step_time = time.perf_counter() - t0
        record = {"loss": loss_value, "grad_norm": grad_norm, "lr": lr, "step_time": step_time,
                  "images_per_second": self.cfg.batch_size / step_time}
        for k, v in record.items():
            self.history[k].append(v)
        return record

    def _micro_batches(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor | None]]:
        """This rank's micro-batches of the step, ``(i, x0, cond)`` on the device, for shard ``streams.shards[i]``."""
        cfg, (_, _, shards, micro) = self.cfg, self.layout
        whole = None if self.batches is None else _split(next(self.batches))  # an iterable yields the global batch
        if whole is not None and shards > 1 and len(whole[0]) != cfg.batch_size:
            raise ValueError(f"the data iterable yielded a batch of {len(whole[0])}; with {shards} micro-batches "
                             f"per step it must yield global batches of batch_size={cfg.batch_size}")
        for i, m in enumerate(self.streams.shards):
            if self.sampler is not None:
                x0, cond = _split(self.sampler(micro, self.streams.data[i]))
            elif shards == 1:
                x0, cond = whole
            else:  # rows of shard m in the global batch
                rows = slice(m * micro, (m + 1) * micro)
                x0, cond = whole[0][rows], whole[1][rows] if whole[1] is not None else None
            if not isinstance(x0, torch.Tensor) or not x0.is_floating_point():
                raise TypeError(f"the data gave x0 of type {getattr(x0, 'dtype', type(x0).__name__)} at step "
                                f"{self.step}; the loop trains on floating-point tensors: convert it in the "
                                "sampler/dataset, e.g. x.float() / 127.5 - 1 for uint8 images")
            x0 = x0.to(self.device, non_blocking=True)
            cond = cond.to(self.device, non_blocking=True) if cond is not None else None
            yield i, x0, cond

    def _accumulate_gradients(self) -> tuple[float, torch.Tensor]:
        """Forward and backward every micro-batch under its own streams (mixed precision, scaled loss); the mean
        loss over all micro-batches of all ranks, and whether this rank's data was finite (a lazy () tensor)."""
        cfg, device, scaler = self.cfg, self.device, self.scaler
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        data_finite = torch.ones((), dtype=torch.bool, device=device)  # read only when the step fails: no sync
        for i, x0, cond in self._micro_batches():
            data_finite &= torch.isfinite(x0).all()
            kwargs = {"generator": self.streams.noise[i]} if self.pass_generator else {}
            # DDP all-reduces gradients in the last round only; the others accumulate locally
            last_round = i == cfg.accumulate - 1
            sync = self.net.no_sync() if self.layout.world > 1 and not last_round else contextlib.nullcontext()
            with sync, self.streams.global_rng(i):
                with self.autocast():
                    per_sample = self.loss_fn(self.net, x0, cond, **kwargs)  # (micro,)
                if per_sample.dtype in (torch.float16, torch.bfloat16):
                    per_sample = per_sample.float()
                loss = per_sample.mean()  # (micro,) -> ()
                loss_sum += loss.detach()
                # even a non-finite loss is backpropagated (DDP needs every rank in the all-reduce);
                # the step is then skipped, on every rank alike
                scaled = loss / cfg.accumulate if cfg.accumulate > 1 else loss
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
        return float(D.reduce_sum(loss_sum)) / self.layout.shards, data_finite  # mean over all micro-batches

    def _update(self) -> tuple[bool, float]:
        """Clip and apply the accumulated gradients, then the EMA; (False, norm) when the norm is not finite
        without a GradScaler. With one, an overflow is GradScaler's to skip: counted, not a failure."""
        opt, scaler = self.opt, self.scaler
        if scaler is not None:
            scaler.unscale_(opt)
        # after DDP's all-reduce the gradients, hence this norm, are the same on every rank
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip or float("inf")))
        if not math.isfinite(grad_norm) and scaler is None:
            return False, grad_norm
        if scaler is not None:
            scaler.step(opt)  # skips the update itself when unscale_ found Inf/NaN
            scaler.update()
        else:
            opt.step()
        if math.isfinite(grad_norm):
            if self.ema is not None:
                self.ema.update(self.model, self.cfg.ema_beta_at(self.step))
        else:  # fp16 overflow: GradScaler lowered the scale; not a NaN failure
            self.overflow += 1
        return True, grad_norm

    def _skip_nonfinite(self, loss_value: float, grad_norm: float, data_finite: torch.Tensor) -> None:
        """NaN/Inf guard: drop this step's update and count it; past ``max_nonfinite``, checkpoint the state
        before the step and stop, saying whether the data or the model went non-finite."""
        self.opt.zero_grad(set_to_none=True)
        self.nonfinite += 1
        bad_data = bool(D.reduce_sum((~data_finite).to(torch.float64)))  # on any rank; every rank skips alike
        self.skipped_bad_data += bad_data
        if self.nonfinite <= self.cfg.max_nonfinite:
            return
        self.checkpoint()
        raise NonFiniteSteps(
            f"{self.nonfinite} non-finite steps, more than max_nonfinite={self.cfg.max_nonfinite}; the last, step "
            f"{self.step} (loss {loss_value}, grad norm {grad_norm}), came from {_culprit(bad_data)}. The "
            f"checkpoint {self.ckpt_path} holds the state before it")

    def check_trained(self, resumed_from: int, skipped_before: int) -> None:
        """Refuse a run that trained (next to) nothing: more than half of the steps of this call, or of the whole
        run, skipped as non-finite (each skip below ``max_nonfinite`` alone would pass). The same on every rank."""
        steps_now, skipped_now = self.step - resumed_from, self.nonfinite - skipped_before
        if 2 * skipped_now <= steps_now and 2 * self.nonfinite <= self.step:
            return
        counts = (f"{skipped_now} of the {steps_now} steps of this call" if 2 * skipped_now > steps_now else
                  f"{self.nonfinite} of the run's {self.step} steps")
        where = (_culprit(self.skipped_bad_data > 0) if skipped_now else
                 "an earlier call; lower lr or the loss weight (e.g. lambda_spec), or check the data for NaN/Inf")
        folder = f" (run folder {self.ckpt_path.parent})" if self.ckpt_path is not None else ""
        kept = (f"; the checkpoint {self.ckpt_path}{folder} was not written at the end (it keeps any periodic "
                "save), so a rerun is not taken as done: delete that folder to start over" if self.ckpt_path else "")
        raise NonFiniteSteps(
            f"{counts} were skipped as non-finite (NaN/Inf loss or gradient; max_nonfinite="
            f"{self.cfg.max_nonfinite}), so the run trained next to nothing and is not complete. The skips came from "
            f"{where}{kept}")

    def progress_postfix(self) -> dict[str, Any]:
        """The progress bar's summary of the last ``log_every`` steps."""
        log_every = self.cfg.log_every
        recent = [v for v in self.history["loss"][-log_every:] if math.isfinite(v)]
        extra = {"overflow": self.overflow} if self.scaler is not None else {}
        return dict(loss=f"{sum(recent) / max(1, len(recent)):.4f}", skipped=self.nonfinite,
                    img_s=f"{_median(self.history['images_per_second'][-log_every:]):.1f}", **extra)


def _culprit(bad_data: bool) -> str:
    """Which side produced the non-finite steps, and what to do about it."""
    if bad_data:
        return "the DATA: a micro-batch of x0 itself holds NaN/Inf; clean the dataset/sampler"
    return ("the MODEL: the data was finite but the loss or its gradient was not; lower lr or the loss weight "
            "(e.g. lambda_spec), keep grad_clip on, try precision='fp32', or check the net")


def _evaluate(evaluate: Evaluate, step: int, model: nn.Module, ema: EMA | None) -> dict[str, float]:
    """Call the hook in eval mode without gradients, then put the model back into training mode."""
    model.eval()
    try:
        with torch.no_grad():
            scalars = evaluate(step, model, ema.model if ema is not None else None) or {}
    finally:
        model.train()
    return {"step": step, **{k: float(v) for k, v in scalars.items()}}


def _check_contents(ck: Any, path: Path) -> None:
    """Refuse a checkpoint whose counters do not describe a run of its own config: ``step`` an int in [0, the
    config's steps], the skip counters ints in [0, step], one loss per step in the history."""
    fix = "delete it (or its run folder) to start over, or restore it from a backup"
    missing = [k for k in ("model", "optimizer", "step", "nonfinite_steps", "rng", "config", "history")
               if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise ResumeError(f"checkpoint {path} is not a training checkpoint of specreg_lib.training (it lacks "
                          f"{missing}); {fix}")
    if not isinstance(ck["config"], dict) or not isinstance(ck["history"], dict):
        raise ResumeError(f"checkpoint {path} holds a malformed config or history; {fix}")
    steps = ck["config"].get("steps", 0)
    step = _counter(ck["step"], "step", path, fix)
    if not isinstance(steps, int) or step > steps:
        raise ResumeError(f"checkpoint {path}: step {step} is past the {steps!r} steps of the config it was trained "
                          f"with; {fix}")
    for key in ("nonfinite_steps", "overflow_steps"):
        if _counter(ck.get(key, 0), key, path, fix) > step:
            raise ResumeError(f"checkpoint {path}: {key}={ck[key]} is more than its step {step}; {fix}")
    losses = ck["history"].get("loss", [])
    if not isinstance(losses, list) or len(losses) != step:
        raise ResumeError(f"checkpoint {path}: step {step} but a history of "
                          f"{len(losses) if isinstance(losses, list) else '?'} losses (one per step); {fix}")


def _counter(value: Any, key: str, path: Path, fix: str) -> int:
    """A checkpoint's count (step, skipped steps): an int >= 0 (not a bool, str or float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ResumeError(f"checkpoint {path}: {key} must be an int >= 0, got {value!r}; {fix}")
    return value


def _check_resumable(ck: dict[str, Any], cfg: TrainConfig, world: int, path: Path) -> None:
    """Refuse to resume a checkpoint trained with other settings or another shard layout."""
    layout = ck.get("layout", {"world_size": 1, "accumulate": 1, "shards": 1})  # the old loop had one shard
    shards = world * cfg.accumulate
    if layout["shards"] != shards:
        raise ResumeError(
            f"{path} was trained with {layout['shards']} micro-batches per step (world_size {layout['world_size']}"
            f" x accumulate {layout['accumulate']}); this run has {shards} (world_size {world} x accumulate "
            f"{cfg.accumulate}), so its data and noise streams would differ. Resume with world_size x "
            f"accumulate = {layout['shards']}, or use a new ckpt_path")
    saved, now = ck["config"], dataclasses.asdict(cfg)
    diff = {k: (saved.get(k, _DEFAULTS[k]), v) for k, v in now.items()
            if k not in _RESUMABLE_CHANGES and _norm(saved.get(k, _DEFAULTS[k])) != _norm(v)}
    if diff:
        raise ResumeError(f"checkpoint {path} was trained with different settings {diff}; use a new ckpt_path")
    if saved.get("steps", 0) > cfg.steps:
        warnings.warn(f"checkpoint ran to {saved['steps']} steps, more than cfg.steps={cfg.steps}",
                      stacklevel=4)  # _check_resumable <- resume <- train <- the caller


def _norm(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v
