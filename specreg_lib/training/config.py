"""The training loop's settings (one frozen, validated dataclass, saved as a dict in every checkpoint), and the one
rule every config's numbers obey.

The rule: every int or float field of a config declares its range beside it, ``steps: Annotated[int, Range(0,
MAX_STEPS)] = 1000``, and :func:`check_ranges`, called first in every config's ``__post_init__``, refuses a value
of the wrong kind, a float that is not finite and a value outside the range with one :class:`ConfigError` that
names the field, the value, the range and an example. A lower bound says where 0 is meaningful; an upper bound
keeps a huge value from hanging a run or exhausting memory. The rule lives here, in the lowest layer that has a
config; ``experiments.core.config`` re-exports it for the experiments' configs, whose errors it re-roots at the
dotted path (``train.steps``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, fields
from typing import Annotated, Any

from ..errors import InputError

PRECISIONS = ("fp32", "bf16", "fp16")

# Upper bounds shared by the configs: far above any real run, far below what would hang or exhaust memory.
MAX_STEPS = 10**9  # optimiser steps, and the periods counted in steps
MAX_BATCH = 65_536  # images or clips in one batch
MAX_IMAGES = 100_000  # images or clips drawn, generated or compared at once
MAX_SEED = 2**31 - 1  # a seed: every RNG here takes it, with room for the fixed offsets added to it
MAX_KIMG = 1e6  # thousands of training images (EDM's longest run is 2e5)
MAX_THREADS = 1024
_NOTHING = object()


class ConfigError(InputError, ValueError):
    """A config value out of its declared range, of the wrong kind or at odds with another field.

    ``path`` is the field's dotted path below ``owner`` (the name of the class that refused it, "" once the path
    is complete); :meth:`rooted` completes it where the config tree is known (``apply_overrides``, ``from_dict``),
    so the message reads ``train.steps=-1: need an int in [0, 1000000000] (e.g. train.steps=1000)``.
    """

    def __init__(self, path: str, problem: str, value: Any = _NOTHING, example: Any = _NOTHING,
                 owner: str = "") -> None:
        self.path, self.problem, self.value, self.example, self.owner = path, problem, value, example, owner
        where = f"{owner}.{path}" if owner else path
        head = where if value is _NOTHING else f"{where}={value!r}"
        tail = "" if example is _NOTHING else f" (e.g. {where}={example!r})"
        super().__init__(f"{head}: {problem}{tail}")

    def rooted(self, prefix: str) -> ConfigError:
        """The same error at ``prefix + path`` (``prefix`` "train." or ""); one already complete is kept."""
        if not self.owner:
            return self
        return type(self)(prefix + self.path, self.problem, self.value, self.example)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes like any builtin error
        return type(self), (self.path, self.problem, self.value, self.example, self.owner)


class ConfigTypeError(ConfigError, TypeError):
    """A config value of the wrong kind (a float or a string where an int is declared)."""


@dataclass(frozen=True)
class Range:
    """The values a numeric config field takes, declared beside it: ``Annotated[float, Range(0, 1, hi_open=True)]``.

    ``lo <= v <= hi``; ``lo_open`` / ``hi_open`` make that end strict; None leaves that side open (a float must
    be finite all the same). On a tuple field it holds for every element. ``example`` is what an error suggests
    where the field's default is None.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    example: Any = None

    def __contains__(self, v: float) -> bool:
        above = self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)
        below = self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)
        return above and below

    def describe(self, kind: type) -> str:
        """``an int in [0, 1000000000]``, ``a finite number in (0, 10]``, ``a finite number >= 0``."""
        noun = "an int" if kind is int else "a finite number"
        lo, hi = (None if b is None else f"{b}" if kind is int else f"{b:g}" for b in (self.lo, self.hi))
        if lo is not None and hi is not None:
            return f"{noun} in {'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"
        if lo is not None:
            return f"{noun} {'>' if self.lo_open else '>='} {lo}"
        if hi is not None:
            return f"{noun} {'<' if self.hi_open else '<='} {hi}"
        return noun


def refuse(cfg: Any, name: str, problem: str, example: Any = _NOTHING) -> ConfigError:
    """The error for ``cfg.<name>`` (a check across fields): raise it from the config's ``__post_init__``."""
    return ConfigError(name, problem, getattr(cfg, name), example, owner=type(cfg).__name__)


@functools.cache  # a class's fields never change; get_type_hints re-evaluates every string annotation each call
def declared_ranges(cls: type) -> tuple[tuple[str, type, Range, bool, bool, Any], ...]:
    """``(name, int | float, Range, is a tuple, may be None, example)`` of every numeric field of a config class.

    A numeric field without a Range is a bug in the class (TypeError), so no field can skip the rule.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in fields(cls):
        hint, optional = hints[f.name], False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint, optional = (args[0], True) if len(args) == 1 else (hint, False)
        rng = None
        if typing.get_origin(hint) is Annotated:
            hint, *meta = typing.get_args(hint)
            rng = next((m for m in meta if isinstance(m, Range)), None)
        is_tuple = typing.get_origin(hint) is tuple
        kinds = {a for a in typing.get_args(hint) if a is not Ellipsis} if is_tuple else {hint}
        if len(kinds) != 1 or not kinds <= {int, float}:
            continue
        kind = kinds.pop()
        if rng is None:
            raise TypeError(f"{cls.__name__}.{f.name} is a number without a declared range: annotate it "
                            f"Annotated[{kind.__name__}, Range(lo, hi)] (training/config.py)")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        example = rng.example if default in (None, dataclasses.MISSING) else default
        out.append((f.name, kind, rng, is_tuple, optional, example))
    return tuple(out)


def check_ranges(cfg: Any) -> None:
    """The one rule for a config's numbers (see the module docstring): kind, finite, in the declared Range."""
    owner = type(cfg).__name__
    for name, kind, rng, is_tuple, optional, example in declared_ranges(type(cfg)):
        value = getattr(cfg, name)
        if value is None and optional:
            continue
        need = rng.describe(kind) + (" for each element" if is_tuple else "")
        items = value if is_tuple and isinstance(value, tuple) else (value,)
        if is_tuple and not isinstance(value, tuple):
            raise ConfigTypeError(name, f"expected a tuple, {need}", value, example, owner)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, int if kind is int else int | float):
                raise ConfigTypeError(name, f"expected {need}", value, example, owner)
            if not math.isfinite(v) or v not in rng:
                raise ConfigError(name, f"need {need}", value, example, owner)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. ``grad_clip=0`` and ``ema_decay=0`` switch those features off.

    ``batch_size`` is the GLOBAL batch of one optimiser step: all ranks times all ``accumulate`` rounds.
    The experiment layer hashes these fields by name: rename none, and give new ones a neutral default.
    """

    steps: Annotated[int, Range(0, MAX_STEPS)] = 1000
    batch_size: Annotated[int, Range(1, MAX_BATCH)] = 16
    lr: Annotated[float, Range(0, 10, lo_open=True)] = 2e-4
    warmup_steps: Annotated[int, Range(0, MAX_STEPS)] = 0  # linear LR ramp from 0
    lr_schedule: str = "constant"  # "constant" | "cosine" (cosine decay to 0 after warm-up)
    optimizer: str = "adam"  # "adam" | "adamw"
    betas: Annotated[tuple[float, float], Range(0, 1, hi_open=True)] = (0.9, 0.999)
    weight_decay: Annotated[float, Range(0, 100)] = 0.0
    grad_clip: Annotated[float, Range(0)] = 1.0  # max global grad norm; 0 = off
    ema_decay: Annotated[float, Range(0, 1, hi_open=True)] = 0.999  # per-step EMA decay; 0 = off (or half-life)
    ema_warmup: bool = True
    seed: Annotated[int, Range(0, MAX_SEED)] = 0
    device: str = "cpu"  # "cpu", "cuda", "cuda:1", or "auto" (under torchrun "cuda"/"auto" -> cuda:LOCAL_RANK)
    checkpoint_every: Annotated[int, Range(0, MAX_STEPS)] = 0  # 0 = only at the end
    log_every: Annotated[int, Range(1, MAX_STEPS)] = 50
    max_nonfinite: Annotated[int, Range(0, MAX_STEPS)] = 10  # raise after this many skipped (NaN/Inf) steps
    progress: bool = True  # tqdm bar
    accumulate: Annotated[int, Range(1, MAX_BATCH)] = 1  # gradient-accumulation rounds per optimiser step
    precision: str = "fp32"  # "fp32" | "bf16" (autocast) | "fp16" (autocast + GradScaler)
    # EDM's EMA half-life in thousands of images; 0 = off. Bounded: a huge one freezes the EMA at its start.
    ema_halflife_kimg: Annotated[float, Range(0, MAX_KIMG)] = 0.0
    # EDM: half-life <= ratio * images seen so far; None = off
    ema_rampup_ratio: Annotated[float, Range(0, 1e3, lo_open=True, example=0.05)] | None = None
    # EDM's linear LR ramp over this many thousand images; 0 = off. Bounded: a huge one keeps the LR at 0.
    lr_rampup_kimg: Annotated[float, Range(0, MAX_KIMG)] = 0.0
    eval_every: Annotated[int, Range(0, MAX_STEPS)] = 0  # run the evaluation hook every this many steps; 0 = never

    def __post_init__(self) -> None:
        if isinstance(self.betas, list | tuple):  # JSON gives a list
            object.__setattr__(self, "betas", tuple(self.betas))
        check_ranges(self)  # every number: the right kind, finite, in its declared range
        if len(self.betas) != 2:
            raise refuse(self, "betas", "need two numbers in [0, 1) (Adam's beta1, beta2)", (0.9, 0.999))
        if self.lr_schedule not in ("constant", "cosine"):
            raise refuse(self, "lr_schedule", "choose 'constant' or 'cosine'", "constant")
        if self.optimizer not in ("adam", "adamw"):
            raise refuse(self, "optimizer", "choose 'adam' or 'adamw'", "adam")
        if self.batch_size % self.accumulate:
            raise refuse(self, "accumulate", f"must divide batch_size={self.batch_size} (the global batch per "
                         "optimiser step)", 1)
        if self.precision not in PRECISIONS:
            raise refuse(self, "precision", f"choose one of {', '.join(PRECISIONS)}", "fp32")
        if self.ema_decay > 0 and self.ema_halflife_kimg > 0:
            raise refuse(self, "ema_halflife_kimg", f"two EMA rules are on: ema_decay={self.ema_decay} (per step) "
                         "and ema_halflife_kimg (EDM half-life); set ema_decay=0 to use the half-life")
        if self.ema_rampup_ratio is not None and self.ema_halflife_kimg == 0:
            raise refuse(self, "ema_rampup_ratio", "needs ema_halflife_kimg > 0; set it to None (off) or set a "
                         "half-life")
        if self.lr_rampup_kimg > 0 and self.warmup_steps > 0:
            raise refuse(self, "lr_rampup_kimg", f"two LR ramps are on: warmup_steps={self.warmup_steps} (steps) "
                         "and lr_rampup_kimg (images, EDM); keep one, set the other to 0")

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
