"""DDPM noise schedules: beta_t for the discrete forward process (paper Eqs. 1-2).

Conventions: step indices are 0-based, ``t = 0`` is the least noisy step and ``t = T - 1`` the noisiest;
``alpha_bar[t] = prod_{s <= t} (1 - beta_s)`` (Eq. 2). All tables are float64 on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

BETA_KINDS = ("linear", "cosine", "cosine_shifted", "diffwave")
DIFFWAVE_FAST_BETAS = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5)  # LMNT DiffWave's 6-step inference schedule
_MAX_BETA = 0.999  # Nichol & Dhariwal clip, so the last cosine step is not a pure-noise singularity


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
    ``DDPMSchedule(DIFFWAVE_FAST_BETAS)``; ``DDPMSchedule.from_kind("linear", T=1000)`` a named one.
    """

    betas: torch.Tensor
    alphas: torch.Tensor = field(init=False, repr=False)
    alpha_bar: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        betas = torch.as_tensor(self.betas, dtype=torch.float64).detach().cpu().clone()
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("every beta must lie in (0, 1)")
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "alphas", 1 - betas)
        object.__setattr__(self, "alpha_bar", torch.cumprod(1 - betas, dim=0))  # Eq. 2

    @classmethod
    def from_kind(cls, kind: str, T: int | None = None, **kw: float) -> DDPMSchedule:
        """Build from a named schedule (see ``beta_schedule``)."""
        return cls(beta_schedule(kind, T, **kw))

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return int(self.betas.numel())

    def check_t(self, t: torch.Tensor) -> torch.Tensor:
        """Validate integer step indices in [0, T-1]; returns them as a long tensor."""
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"step indices t must be an integer tensor, got {t.dtype}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.T):
            raise ValueError(f"step indices t must lie in [0, {self.T - 1}], got range "
                             f"[{int(t.min())}, {int(t.max())}]")
        return t.long()

    def alpha_bar_at(self, t: torch.Tensor | int) -> torch.Tensor:
        """alpha_bar at step indices t (any shape), float64 on the CPU."""
        t = self.check_t(torch.as_tensor(t)).cpu()
        return self.alpha_bar.index_select(0, t.reshape(-1)).reshape(t.shape)  # (much faster than ab[t])

    def snr(self, t: torch.Tensor | int) -> torch.Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t), float64."""
        ab = self.alpha_bar_at(t)
        return ab / (1 - ab)

    def sigma(self, t: torch.Tensor | int) -> torch.Tensor:
        """The equivalent EDM noise level sigma_t = sqrt((1 - alpha_bar_t)/alpha_bar_t) = SNR(t)^(-1/2)."""
        return self.snr(t).rsqrt()


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
