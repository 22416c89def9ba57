"""DDPM noise schedules: beta_t for the discrete forward process (paper Eqs. 1-2).

Conventions: step indices are 0-based, ``t = 0`` is the least noisy step and ``t = T - 1`` the noisiest;
``alpha_bar[t] = prod_{s <= t} (1 - beta_s)`` (Eq. 2). The tables are float64 on the CPU; lookups at step
indices t run on t's device (a cached copy of the table), so a training step never copies t to the host.

Other codebases' schedules: ``DDPMSchedule.from_alphas_cumprod(alphas_cumprod)``,
``DDPMSchedule.from_betas(betas)`` and ``DDPMSchedule.from_diffusers(scheduler)``. Zero-terminal-SNR schedules
(Lin et al. 2024, diffusers ``rescale_betas_zero_snr=True``) end at beta = 1, alpha_bar = 0: they are kept
exactly, and the diffusion losses treat that last step as documented in ``ddpm.predict_eps_x0`` and the hook.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

BETA_KINDS = ("linear", "cosine", "cosine_shifted", "diffwave")
DIFFWAVE_FAST_BETAS = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5)  # LMNT DiffWave's 6-step inference schedule
_MAX_BETA = 0.999  # Nichol & Dhariwal clip, so the last cosine step is not a pure-noise singularity
NORMS = ("l2", "l1")  # the eps loss's norm (``DDPMLoss``), which sets its own x0-space weight
# diffusers' prediction_type -> our parametrization name (``ddpm.PARAMETRIZATIONS``)
DIFFUSERS_PREDICTION_TYPES = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}


def _cosine_alpha_bar(T: int, s: float) -> torch.Tensor:
    """Nichol & Dhariwal's alpha_bar(t) = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) * pi/2), t = 0..T."""
    steps = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


def _betas_from_alpha_bar(alpha_bar: torch.Tensor) -> torch.Tensor:
    """beta_t = 1 - alpha_bar(t+1)/alpha_bar(t), clipped at 0.999; (T+1,) -> (T,)."""
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=_MAX_BETA)


def beta_schedule(kind: str, T: int | None = None, **kw: float) -> torch.Tensor:
    """The (T,) float64 betas of a named schedule; ``T`` defaults to 1000 (50 for "diffwave").

    - "linear": linspace(beta_start=1e-4, beta_end=0.02, T) (Ho et al. 2020).
    - "cosine": Nichol & Dhariwal 2021 with offset ``s=0.008``, betas clipped at 0.999.
    - "cosine_shifted": cosine with SNR(t) divided by ``snr_scale`` (log-SNR shifted by -log(snr_scale)),
      i.e. alpha_bar' = alpha_bar / (alpha_bar + snr_scale * (1 - alpha_bar)); betas from alpha_bar'.
    - "diffwave": LMNT DiffWave's training schedule linspace(1e-4, 0.05, 50).
    """
    if kind not in BETA_KINDS:
        raise ValueError(f"unknown beta schedule {kind!r}; choose one of {BETA_KINDS}")
    T = (50 if kind == "diffwave" else 1000) if T is None else T
    if not isinstance(T, int) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    allowed = {
        "linear": {"beta_start", "beta_end"},
        "cosine": {"s"},
        "cosine_shifted": {"s", "snr_scale"},
        "diffwave": set(),
    }[kind]
    if set(kw) - allowed:
        raise TypeError(f"beta_schedule({kind!r}) got unexpected options {sorted(set(kw) - allowed)}")
    if kind == "linear":
        return torch.linspace(kw.get("beta_start", 1e-4), kw.get("beta_end", 0.02), T, dtype=torch.float64)
    if kind == "diffwave":
        return torch.linspace(1e-4, 0.05, T, dtype=torch.float64)
    alpha_bar = _cosine_alpha_bar(T, kw.get("s", 0.008))
    if kind == "cosine_shifted":
        scale = kw.get("snr_scale", 16.0)
        if scale <= 0:
            raise ValueError(f"snr_scale must be > 0, got {scale}")
        alpha_bar = alpha_bar / (alpha_bar + scale * (1 - alpha_bar))  # SNR' = SNR / snr_scale
    return _betas_from_alpha_bar(alpha_bar)


@dataclass(frozen=True, eq=False)
class DDPMSchedule:
    """A discrete DDPM schedule: ``betas`` (T,) and the derived ``alphas``, ``alpha_bar`` (Eq. 2), float64.

    ``DDPMSchedule(betas)`` takes any user-given schedule, e.g. DiffWave's 6-step fast inference one
    ``DDPMSchedule(DIFFWAVE_FAST_BETAS)``; ``DDPMSchedule.from_kind("linear", T=1000)`` a named one;
    ``from_alphas_cumprod`` / ``from_diffusers`` another codebase's. Every beta lies in (0, 1), except that the
    LAST may be exactly 1 (a zero-terminal-SNR schedule, alpha_bar[T-1] = 0). A first beta >= 0.5 is refused:
    no real schedule destroys half the signal in its first step, and it is what ``alphas_cumprod`` passed
    as betas looks like (~0.9999 first).
    """

    betas: torch.Tensor
    alphas: torch.Tensor = field(init=False, repr=False)
    alpha_bar: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas, dtype=torch.float64).detach().cpu().clone()
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}")
        if float(betas[0]) >= 0.5:
            raise ValueError(f"betas[0] = {float(betas[0]):.6g} >= 0.5: these look like alphas_cumprod (alpha_bar, "
                             "~1 at t = 0), not betas; use DDPMSchedule.from_alphas_cumprod(alphas_cumprod)")
        inner_ok = bool(((betas[:-1] > 0) & (betas[:-1] < 1)).all())
        if not inner_ok or not 0 < float(betas[-1]) <= 1:
            raise ValueError("every beta must lie in (0, 1) (the last may be exactly 1: zero terminal SNR)")
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas", 1 - betas)
        object.__setattr__(self, "alpha_bar", torch.cumprod(1 - betas, dim=0))  # Eq. 2
        object.__setattr__(self, "_on_device", {})  # device -> alpha_bar there (see _alpha_bar_on)

    @classmethod
    def from_kind(cls, kind: str, T: int | None = None, **kw: float) -> DDPMSchedule:
        """Build from a named schedule (see ``beta_schedule``)."""
        return cls(beta_schedule(kind, T, **kw))

    @classmethod
    def from_betas(cls, betas: Sequence[float] | torch.Tensor) -> DDPMSchedule:
        """Build from betas (T,), as ``DDPMSchedule(betas)``."""
        return cls(betas)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: Sequence[float] | torch.Tensor) -> DDPMSchedule:
        """Build from alpha_bar (T,) (diffusers' ``alphas_cumprod``), kept exactly as given (in float64).

        It must decrease strictly from below 1 to >= 0; a last value of exactly 0 is a zero-terminal-SNR
        schedule. betas = 1 - alpha_bar[t] / alpha_bar[t-1] (alpha_bar[-1] = 1).
        """
        ab = torch.as_tensor(alphas_cumprod, dtype=torch.float64).detach().cpu().clone()
        if ab.ndim != 1 or ab.numel() == 0:
            raise ValueError(f"alphas_cumprod must be a non-empty 1-D sequence, got shape {tuple(ab.shape)}")
        if ab.numel() > 1 and bool((ab[1:] >= ab[:-1]).all()):
            raise ValueError("alphas_cumprod increase with t: these look like betas, not alpha_bar; "
                             "use DDPMSchedule(betas) (or from_betas)")
        if not 0 < float(ab[0]) < 1 or float(ab[-1]) < 0 or bool((ab[1:] >= ab[:-1]).any()):
            raise ValueError("alphas_cumprod (alpha_bar) must decrease strictly from below 1 at t = 0 to >= 0 "
                             "at t = T-1 (exactly 0 only for a zero-terminal-SNR schedule)")
        prev = torch.cat([ab.new_ones(1), ab[:-1]])
        sched = cls(1 - ab / prev)
        object.__setattr__(sched, "alphas", ab / prev)
        object.__setattr__(sched, "alpha_bar", ab)  # the given values, not a re-derived cumprod
        return sched

    @classmethod
    def from_diffusers(cls, scheduler: Any) -> DDPMSchedule:
        """Build from a diffusers scheduler's ``alphas_cumprod`` (DDPM, DDIM, Euler, ...; any beta_schedule,
        ``rescale_betas_zero_snr`` included). Its ``prediction_type``: ``diffusers_parametrization``."""
        ab = getattr(scheduler, "alphas_cumprod", None)
        if ab is None:
            raise TypeError(f"{type(scheduler).__name__} has no alphas_cumprod; pass a diffusers DDPM-family "
                            "scheduler (DDPMScheduler, DDIMScheduler, ...) or use from_alphas_cumprod")
        return cls.from_alphas_cumprod(ab)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_on_device"] = {}  # device copies are a cache, never pickled
        return state

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return int(self.betas.numel())

    @property
    def zero_terminal_snr(self) -> bool:
        """Whether alpha_bar reaches exactly 0 at t = T-1 (x0_hat from an eps output is undefined there)."""
        return float(self.alpha_bar[-1]) == 0.0

    def check_t(self, t: torch.Tensor) -> torch.Tensor:
        """Validate integer step indices in [0, T-1]; returns them as a long tensor.

        No host sync: the range is checked eagerly only for CPU tensors; on an accelerator it is an
        asynchronous device assert (``torch._assert_async``), which fails the next synchronising call.
        """
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"step indices t must be an integer tensor, got {t.dtype}")
        if t.device.type == "cpu":
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.T):
                raise ValueError(f"step indices t must lie in [0, {self.T - 1}], got range "
                                 f"[{int(t.min())}, {int(t.max())}]")
        elif t.numel():
            torch._assert_async(((t >= 0) & (t < self.T)).all(), f"step indices t must lie in [0, {self.T - 1}]")
        return t.long()

    def _alpha_bar_on(self, device: torch.device) -> torch.Tensor:
        """alpha_bar (T,) on ``device``, copied once per device (float32 on MPS, which has no float64)."""
        if device.type == "cpu":
            return self.alpha_bar
        cache = self.__dict__.setdefault("_on_device", {})  # (absent from schedules pickled before the cache)
        table = cache.get(device)
        if table is None:
            dtype = torch.float32 if device.type == "mps" else torch.float64
            table = cache[device] = self.alpha_bar.to(device=device, dtype=dtype)
        return table

    def alpha_bar_at(self, t: torch.Tensor | int) -> torch.Tensor:
        """alpha_bar at step indices t (any shape), float64 on t's device."""
        t = self.check_t(torch.as_tensor(t))
        return self._alpha_bar_on(t.device).index_select(0, t.reshape(-1)).reshape(t.shape)  # (faster than ab[t])

    def snr(self, t: torch.Tensor | int) -> torch.Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t), float64 (0 at a zero-terminal-SNR last step)."""
        ab = self.alpha_bar_at(t)
        return ab / (1 - ab)

    def sigma(self, t: torch.Tensor | int) -> torch.Tensor:
        """The equivalent EDM noise level sigma_t = sqrt((1 - alpha_bar_t)/alpha_bar_t) = SNR(t)^(-1/2) (inf
        where alpha_bar_t = 0)."""
        return self.snr(t).rsqrt()


def ddpm_noise_level(schedule: DDPMSchedule, t: torch.Tensor, like: torch.Tensor, norm: str = "l2"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigma_t, lambda_t), (B,) in like's dtype and device: the noise level at steps t (B,) and the eps loss's own
    x0-space weight, SNR(t) for ``norm="l2"`` (||eps - eps_hat||^2 = SNR ||x0 - x0_hat||^2), sqrt(SNR(t)) for "l1"."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
    snr = schedule.snr(t).to(device=like.device, dtype=like.dtype)  # (B,)
    return snr.rsqrt(), (snr if norm == "l2" else snr.sqrt())


def diffusers_parametrization(scheduler: Any) -> str:
    """Our parametrization name ("eps", "v", "x0") for a diffusers scheduler's ``config.prediction_type``."""
    kind = getattr(getattr(scheduler, "config", None), "prediction_type", None)
    if kind not in DIFFUSERS_PREDICTION_TYPES:
        raise ValueError(f"prediction_type {kind!r} is not one of {sorted(DIFFUSERS_PREDICTION_TYPES)}")
    return DIFFUSERS_PREDICTION_TYPES[kind]


def align_steps(train_schedule: DDPMSchedule, infer_schedule: DDPMSchedule | Sequence[float]) -> torch.Tensor:
    """The continuous training step t (float64, (S,)) matching each inference step's alpha_bar.

    DiffWave (Kong et al. 2021, and LMNT's fast inference) runs a short schedule with a network trained on a
    long one; the step embedding gets the training-time t whose sqrt(alpha_bar) equals the inference step's,
    linearly interpolated between neighbouring training steps (clamped to [0, T_train - 1]).
    Pass the result as ``model_steps`` to ``ancestral_sample`` / ``ddim_sample``.
    """
    if not isinstance(infer_schedule, DDPMSchedule):
        infer_schedule = DDPMSchedule(torch.as_tensor(infer_schedule, dtype=torch.float64))
    if train_schedule.T == 1:
        return torch.zeros(infer_schedule.T, dtype=torch.float64)
    # sqrt(alpha_bar) decreases with t; torch has no interp, so search the reversed (increasing) table.
    xp = train_schedule.alpha_bar.sqrt().flip(0)
    x = infer_schedule.alpha_bar.sqrt().clamp(float(xp[0]), float(xp[-1]))
    hi = torch.searchsorted(xp, x).clamp(1, xp.numel() - 1)
    lo = hi - 1
    frac = (x - xp[lo]) / (xp[hi] - xp[lo])
    t_rev = lo.double() + frac  # position in the reversed table
    return (train_schedule.T - 1) - t_rev
