"""DDPM / DDIM: forward noising (Eq. 2), parametrisations, the epsilon loss (Eq. 3) with the spectral hook
(Eq. 17 on x0_hat of Eq. 5), and the ancestral and DDIM (Eq. 4) samplers.

Network contract: ``model(x_t, t)`` or ``model(x_t, t, cond)``, ``t`` a long (B,) tensor of 0-based step
indices (t = 0 least noisy), or floats when a short inference schedule is mapped onto the training one
(``schedules.align_steps``). Its output is eps, x0 or v (``parametrization``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .hook import Regularizer, SpectralHookLoss, check_x0, network_output, per_sample_mean
from .schedules import NORMS, DDPMSchedule, ddpm_noise_level

PARAMETRIZATIONS = ("eps", "x0", "v")
Model = Callable[..., torch.Tensor]


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) in x's dtype and device."""
    return v.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def _alpha_bar(schedule: DDPMSchedule, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t gathered per sample, shaped (B, 1, ..., 1) like x."""
    t = torch.as_tensor(t)
    if t.ndim != 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"t must have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return _bcast(schedule.alpha_bar_at(t), x)


def _check_param(parametrization: str) -> None:
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"unknown parametrization {parametrization!r}; choose one of {PARAMETRIZATIONS}")


def q_sample(schedule: DDPMSchedule, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (Eq. 2)."""
    ab = _alpha_bar(schedule, t, x0)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # Eq. 2


def _convert(output: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor | float, parametrization: str
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(eps_hat, x0_hat) from the network output; alpha_bar broadcasts against x_t."""
    a = alpha_bar.sqrt() if isinstance(alpha_bar, torch.Tensor) else math.sqrt(alpha_bar)
    b = (1 - alpha_bar).sqrt() if isinstance(alpha_bar, torch.Tensor) else math.sqrt(1 - alpha_bar)
    if parametrization == "eps":
        return output, (x_t - b * output) / a  # Eq. 5
    if parametrization == "x0":
        return (x_t - a * output) / b, output
    if parametrization == "v":  # v = a eps - b x0 (Salimans & Ho 2022)
        return b * x_t + a * output, a * x_t - b * output
    _check_param(parametrization)
    raise AssertionError  # unreachable


def predict_eps_x0(schedule: DDPMSchedule, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                   parametrization: str = "eps") -> tuple[torch.Tensor, torch.Tensor]:
    """(eps_hat, x0_hat) from a network output (eps / x0 / v parametrisation); x0_hat by Eq. 5 for eps.

    Zero terminal SNR: where alpha_bar_t = 0, x_t = eps carries nothing about x0 and Eq. 5 divides by 0, so
    an eps output gives x0_hat = 0 there (finite, no gradient); the spectral term weighs those samples 0
    (``hook.guarded_weight``). v and x0 outputs define x0_hat at every step (x0_hat = -v there).
    """
    _check_param(parametrization)
    output = network_output(output)
    ab = _alpha_bar(schedule, t, x_t)
    if parametrization != "eps" or not schedule.zero_terminal_snr:
        return _convert(output, x_t, ab, parametrization)
    defined = ab > 0
    eps_hat, x0_hat = _convert(output, x_t, torch.where(defined, ab, torch.ones_like(ab)), parametrization)
    return eps_hat, torch.where(defined, x0_hat, torch.zeros_like(x0_hat))


def _call(model: Model, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
    return network_output(model(x, t) if cond is None else model(x, t, cond))  # diffusers: .sample


class DDPMLoss(SpectralHookLoss):
    """Per-sample eps loss (Eq. 3, or L1 as DiffWave) + lambda_spec * w * L_S(x0_hat, x0), x0_hat by Eq. 5.

    ``__call__(net, x0, cond=None, generator=None, return_parts=False) -> (B,)``: draws t ~ U{0..T-1} and eps,
    takes the mean over non-batch dims of (eps_hat - eps)^2 (``norm="l2"``) or |eps_hat - eps| (``"l1"``),
    whatever the parametrisation. The spectral term is ``regularizer`` (a ``Regularizer``; None = baseline);
    its time weighting (see ``weighting.py``) defaults to "alpha_bar", our choice:
    the paper only states a constant lambda ("unweighted") for DiffWave; its reproduction should pass that.
    "weighted" here means SNR(t) for L2 and sqrt(SNR(t)) for L1, the eps loss's own weight on the x0 error.
    ``return_parts=True`` returns a dict with 'loss', 'diffusion', 'term' (lambda_spec * w * L_S), 'spectral',
    'weight', 'sigma', 't'.
    """

    noise_form = "t"  # default weighting "alpha_bar" (hook.DEFAULT_WEIGHTING)

    def __init__(self, schedule: DDPMSchedule, parametrization: str = "eps", norm: str = "l2",
                 regularizer: Regularizer | None = None) -> None:
        if not isinstance(schedule, DDPMSchedule):
            raise TypeError(f"schedule must be a DDPMSchedule, got {type(schedule).__name__}")
        _check_param(parametrization)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
        super().__init__(regularizer)
        self.schedule, self.parametrization, self.norm = schedule, parametrization, norm

    def __call__(self, net: Model, x0: torch.Tensor, cond: Any = None,
                 generator: torch.Generator | None = None, return_parts: bool = False
                 ) -> torch.Tensor | dict[str, torch.Tensor]:
        B = check_x0(x0).shape[0]
        t = torch.randint(0, self.schedule.T, (B,), generator=generator, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = q_sample(self.schedule, x0, t, eps)
        output = _call(net, x_t, t, cond)
        eps_hat, x0_hat = predict_eps_x0(self.schedule, output, x_t, t, self.parametrization)
        err = eps_hat - eps
        l_diff = per_sample_mean(err.square() if self.norm == "l2" else err.abs())  # Eq. 3 (L2) or L1: (B,)
        sigma, lam = ddpm_noise_level(self.schedule, t, x0, self.norm)  # (B,) each
        return self._add_spectral(l_diff, x0_hat, x0, sigma, lam, t, return_parts)


def _steps(model_steps: Sequence[float] | torch.Tensor | None, T: int) -> list[float] | None:
    if model_steps is None:
        return None
    steps = torch.as_tensor(model_steps, dtype=torch.float64).flatten().tolist()
    if len(steps) != T:
        raise ValueError(f"model_steps needs one entry per schedule step ({T}), got {len(steps)}")
    return steps


def _model_t(i: int, steps: list[float] | None, x: torch.Tensor) -> torch.Tensor:
    """The step handed to the model: index i as long (B,), or the aligned float step."""
    if steps is None:
        return torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
    return torch.full((x.shape[0],), steps[i], dtype=x.dtype, device=x.device)


def _denoise(model: Model, x: torch.Tensor, i: int, ab: float, steps: list[float] | None, cond: Any,
             parametrization: str, clip_x0: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One network call at step i: (eps_hat, x0_hat), x0_hat optionally clamped to [-clip_x0, clip_x0]."""
    eps_hat, x0_hat = _convert(_call(model, x, _model_t(i, steps, x), cond), x, ab, parametrization)
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
        eps_hat = (x - math.sqrt(ab) * x0_hat) / math.sqrt(1 - ab)  # keep eps_hat consistent with x0_hat
    return eps_hat, x0_hat


def _check_sampler(schedule: DDPMSchedule, parametrization: str, clip_x0: float | None) -> None:
    if not isinstance(schedule, DDPMSchedule):
        raise TypeError(f"schedule must be a DDPMSchedule, got {type(schedule).__name__}")
    _check_param(parametrization)
    if clip_x0 is not None and not clip_x0 > 0:
        raise ValueError(f"clip_x0 must be > 0 or None, got {clip_x0}")


@torch.no_grad()
def ancestral_sample(model: Model, latents: torch.Tensor, schedule: DDPMSchedule,
                     clip_x0: float | None = None, generator: torch.Generator | None = None, cond: Any = None,
                     callback: Callable | None = None, parametrization: str = "eps",
                     model_steps: Sequence[float] | None = None, clip_x: float | None = None) -> torch.Tensor:
    """DDPM ancestral sampling from x_{T-1} = latents ~ N(0, I) with the posterior q(x_{t-1} | x_t, x0_hat).

    x_{t-1} = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0_hat
              + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t + sqrt(beta_tilde_t) z,
    beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t, no noise at t = 0.
    A short user schedule (DiffWave's fast ``DDPMSchedule(DIFFWAVE_FAST_BETAS)``) is a short ``schedule``;
    LMNT's fast inference also feeds the network the aligned training step: pass
    ``model_steps=align_steps(train_schedule, schedule)``. ``callback({'i', 't', 'x', 'x0_hat'})`` each step.
    ``clip_x`` clamps x_{t-1} itself to [-clip_x, clip_x] after every step (LMNT DiffWave's inference clamps the
    waveform to [-1, 1]; None = off).
    """
    _check_sampler(schedule, parametrization, clip_x0)
    if clip_x is not None and not clip_x > 0:
        raise ValueError(f"clip_x must be > 0 or None, got {clip_x}")
    steps = _steps(model_steps, schedule.T)
    betas, abar = schedule.betas.tolist(), schedule.alpha_bar.tolist()
    x = latents
    for i in range(schedule.T - 1, -1, -1):
        ab, ab_prev, beta = abar[i], (abar[i - 1] if i > 0 else 1.0), betas[i]
        _, x0_hat = _denoise(model, x, i, ab, steps, cond, parametrization, clip_x0)
        c_x0 = math.sqrt(ab_prev) * beta / (1 - ab)
        c_xt = math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
        x = c_x0 * x0_hat + c_xt * x
        if i > 0:
            std = math.sqrt((1 - ab_prev) / (1 - ab) * beta)
            x = x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if clip_x is not None:
            x = x.clamp(-clip_x, clip_x)
        if callback is not None:
            callback({"i": schedule.T - 1 - i, "t": i, "x": x, "x0_hat": x0_hat})
    return x


def ddim_timesteps(T: int, num_steps: int) -> list[int]:
    """``num_steps`` evenly spaced step indices from T-1 down to 0 (a DDIM subsequence)."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be an int in [1, {T}], got {num_steps!r}")
    if num_steps == 1:  # one step is x0_hat from pure noise at t = T-1, not t = 0 (which returns the noise)
        return [T - 1]
    return sorted({round(k * (T - 1) / (num_steps - 1)) for k in range(num_steps)}, reverse=True)


@torch.no_grad()
def ddim_sample(model: Model, latents: torch.Tensor, schedule: DDPMSchedule,
                timesteps: Sequence[int] | None = None, eta: float = 0.0, clip_x0: float | None = None,
                generator: torch.Generator | None = None, cond: Any = None, callback: Callable | None = None,
                parametrization: str = "eps", model_steps: Sequence[float] | None = None) -> torch.Tensor:
    """DDIM sampling (Eq. 4 at eta = 0) over ``timesteps``, a strictly decreasing subset of step indices.

    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - s^2) eps_hat + s z,
    s = eta sqrt((1 - abar_prev)/(1 - abar_t)) sqrt(1 - abar_t/abar_prev); abar_prev = 1 after the last step.
    """
    _check_sampler(schedule, parametrization, clip_x0)
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    ts = list(range(schedule.T - 1, -1, -1)) if timesteps is None else [int(t) for t in timesteps]
    if not ts or any(a <= b for a, b in zip(ts, ts[1:])) or ts[-1] < 0 or ts[0] >= schedule.T:
        raise ValueError(f"timesteps must be strictly decreasing indices in [0, {schedule.T - 1}]")
    steps = _steps(model_steps, schedule.T)
    abar = schedule.alpha_bar.tolist()
    x = latents
    for k, i in enumerate(ts):
        ab, ab_prev = abar[i], (abar[ts[k + 1]] if k + 1 < len(ts) else 1.0)
        eps_hat, x0_hat = _denoise(model, x, i, ab, steps, cond, parametrization, clip_x0)
        s = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
        x = math.sqrt(ab_prev) * x0_hat + math.sqrt(max(1 - ab_prev - s * s, 0.0)) * eps_hat  # Eq. 4
        if s > 0:
            x = x + s * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if callback is not None:
            callback({"i": k, "t": i, "x": x, "x0_hat": x0_hat})
    return x
