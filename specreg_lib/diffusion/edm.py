"""EDM (Karras et al. 2022), written from its formulas: VP / VE / EDM preconditioning, their losses with the
spectral hook (paper Eqs. 6-7, 17), the rho time discretisation, and the Heun / Euler samplers.

x_sigma = x0 + sigma eps (Eq. 6); the denoiser D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) is x0_hat.
Constants are those of edm.md section 1a-1c.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .hook import Regularizer, SpectralHookLoss, check_positive, check_x0, network_output, per_sample_mean
from .weighting import lambda_edm

KINDS = ("vp", "ve", "edm")
VP_FORMS = ("edm", "accurate")  # how VP's sigma <-> t conversions are evaluated (vp_sigma, vp_sigma_inv)
Denoiser = Callable[..., torch.Tensor]


def _check_vp_form(form: str) -> None:
    if form not in VP_FORMS:
        raise ValueError(f"unknown VP arithmetic {form!r}; choose one of {VP_FORMS} ('edm' reproduces the "
                         "official VP nets' inputs, 'accurate' is the exact function)")


def vp_sigma(t: torch.Tensor | float, beta_d: float = 19.9, beta_min: float = 0.1, form: str = "accurate"
             ) -> torch.Tensor:
    """VP noise level sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1).

    ``form="accurate"``: expm1 in float64. ``form="edm"``: EDM VPPrecond's exp(.) - 1 in float32 (how it
    computes its sigma range; sigma(1e-5) then rounds to 2^-10 = 0.00097656 instead of 0.0010005).
    """
    _check_vp_form(form)
    if form == "edm":
        t = torch.as_tensor(t, dtype=torch.float32)
        return ((0.5 * beta_d * t**2 + beta_min * t).exp() - 1).sqrt()
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.expm1(0.5 * beta_d * t**2 + beta_min * t).sqrt()


def vp_sigma_inv(sigma: torch.Tensor, beta_d: float = 19.9, beta_min: float = 0.1, form: str = "edm"
                 ) -> torch.Tensor:
    """VP inverse t(sigma) = (sqrt(beta_min^2 + 2 beta_d ln(1 + sigma^2)) - beta_min) / beta_d, in sigma's dtype.

    ``form="edm"``: EDM VPPrecond's expression, ln of the rounded (1 + sigma^2) then sqrt(.) - beta_min; in float32
    (as its VPPrecond runs) it gives EDM's values bit for bit, about 1.3% off at sigma = 0.002. The official VP
    nets were trained on these. ``form="accurate"``: log1p and the cancellation-free
    2 ln(1 + sigma^2) / (sqrt(beta_min^2 + 2 beta_d ln(1 + sigma^2)) + beta_min), exact to a few ulp.
    """
    _check_vp_form(form)
    if form == "edm":
        return ((beta_min**2 + 2 * beta_d * (1 + sigma**2).log()).sqrt() - beta_min) / beta_d
    log_1p = torch.log1p(sigma**2)
    return 2 * log_1p / ((beta_min**2 + 2 * beta_d * log_1p).sqrt() + beta_min)


def vp_sigma_range(epsilon_t: float = 1e-5, beta_d: float = 19.9, beta_min: float = 0.1, form: str = "edm"
                   ) -> tuple[float, float]:
    """VP's (sigma_min, sigma_max) = (sigma(epsilon_t), sigma(1)) by ``vp_sigma`` in the given form.

    EDM's VPPrecond uses the "edm" form: sigma_min = 2^-10 = 0.00097656 (the exact sigma(1e-5) is 0.0010005).
    """
    return float(vp_sigma(epsilon_t, beta_d, beta_min, form)), float(vp_sigma(1.0, beta_d, beta_min, form))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown preconditioning kind {kind!r}; choose one of {KINDS}")


def _check_nonneg(sigma: torch.Tensor) -> None:
    # Eager on CPU; on an accelerator an asynchronous device assert, so the hot path never syncs with the host
    # (the failure surfaces at the next synchronising call). NaN fails both comparisons.
    ok = ((sigma >= 0) & sigma.isfinite()).all()
    if sigma.device.type != "cpu":
        torch._assert_async(ok, "sigma must be finite and >= 0")
    elif not bool(ok):
        raise ValueError(f"sigma must be finite and >= 0, got values in [{float(sigma.min())}, {float(sigma.max())}]"
                         "; the samplers' last sigma is 0 and their first a finite sigma_max (e.g. 80)")


def preconditioning(kind: str, sigma: torch.Tensor | float, sigma_data: float = 0.5, *, beta_d: float = 19.9,
                    beta_min: float = 0.1, M: int = 1000, vp_form: str = "edm"
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) of the VP / VE / EDM preconditioning (EDM Table 1), like sigma.

    ``vp_form`` is VP's c_noise arithmetic, see ``vp_sigma_inv``."""
    _check_kind(kind)
    if not isinstance(sigma, torch.Tensor) or not sigma.dtype.is_floating_point:
        sigma = torch.as_tensor(sigma, dtype=torch.float64)  # python numbers: float64
    _check_nonneg(sigma)
    if kind == "vp":
        c_skip, c_out = torch.ones_like(sigma), -sigma
        c_in = (sigma**2 + 1).rsqrt()
        c_noise = (M - 1) * vp_sigma_inv(sigma, beta_d, beta_min, vp_form)
    elif kind == "ve":
        c_skip, c_out, c_in = torch.ones_like(sigma), sigma, torch.ones_like(sigma)
        c_noise = (0.5 * sigma).log()
    else:
        c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
        c_out = sigma * sigma_data / (sigma**2 + sigma_data**2).sqrt()
        c_in = (sigma**2 + sigma_data**2).rsqrt()
        c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def as_sigma(sigma: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """sigma given as a scalar, (B,) or (B, 1, ..., 1) -> (B, 1, ..., 1) in x's dtype/device; checks >= 0."""
    B, ones = x.shape[0], [1] * (x.ndim - 1)
    sigma = torch.as_tensor(sigma, device=x.device)
    sigma = sigma.to(x.dtype if x.dtype.is_floating_point else torch.float32)
    if sigma.numel() == 1:
        sigma = sigma.reshape(1).expand(B)
    elif not (sigma.shape[0] == B and sigma.numel() == B and all(s == 1 for s in sigma.shape[1:])
              and sigma.ndim in (1, x.ndim)):
        want = ", ".join(["1"] * len(ones))
        raise ValueError(f"sigma of shape {tuple(sigma.shape)} cannot be read as per-sample noise levels for "
                         f"x of shape {tuple(x.shape)}; pass a scalar, ({B},) or ({B}, {want})")
    _check_nonneg(sigma)
    return sigma.reshape(B, *ones)


class Precond(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c_noise) around a raw network ``net`` (EDM Table 1).

    ``net`` is called as ``net(c_in * x, c_noise.flatten())`` or, with ``cond``, ``net(..., cond)``.
    ``sigma_min`` / ``sigma_max`` default to the kind's range: VP sigma(epsilon_t)..sigma(1) (``vp_sigma_range``),
    VE 0.02..100, EDM 0..inf; samplers clamp their schedule to it (``sampler_sigmas``).
    ``vp_form`` ("edm" | "accurate") is how VP evaluates c_noise and its range: "edm" (default) as EDM's VPPrecond
    does, which the official VP nets were trained with; "accurate" the exact functions (``vp_sigma_inv``).
    """

    def __init__(self, net: nn.Module | Callable[..., torch.Tensor], kind: str = "edm",
                 sigma_data: float = 0.5,
                 sigma_min: float | None = None, sigma_max: float | None = None, beta_d: float = 19.9,
                 beta_min: float = 0.1, M: int = 1000, epsilon_t: float = 1e-5, vp_form: str = "edm") -> None:
        super().__init__()
        _check_kind(kind)
        _check_vp_form(vp_form)
        self.net, self.kind, self.sigma_data = net, kind, check_positive(sigma_data, "sigma_data")
        self.beta_d, self.beta_min, self.M, self.vp_form = beta_d, beta_min, M, vp_form
        if kind == "vp":
            default = vp_sigma_range(epsilon_t, beta_d, beta_min, vp_form)
        else:
            default = {"ve": (0.02, 100.0), "edm": (0.0, math.inf)}[kind]
        self.sigma_min = default[0] if sigma_min is None else float(sigma_min)
        self.sigma_max = default[1] if sigma_max is None else float(sigma_max)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, cond: Any = None, **net_kwargs: Any
                ) -> torch.Tensor:
        """D(x; sigma) for x (B, ...) and sigma scalar, (B,) or (B, 1, ..., 1); ``net_kwargs`` go to the net."""
        sigma = as_sigma(sigma, x)
        c_skip, c_out, c_in, _ = preconditioning(self.kind, sigma, self.sigma_data, beta_d=self.beta_d,
                                                 beta_min=self.beta_min, M=self.M, vp_form=self.vp_form)
        # D(x; 0) = x: c_out(0) = 0, but c_noise(0) = log 0 would feed -inf (then 0 * NaN) to the net, so the
        # net sees the smallest positive sigma instead and the result is exactly x.
        tiny = torch.finfo(sigma.dtype).tiny
        c_noise = preconditioning(self.kind, sigma.clamp_min(tiny), self.sigma_data, beta_d=self.beta_d,
                                  beta_min=self.beta_min, M=self.M, vp_form=self.vp_form)[3]
        args = (c_in * x, c_noise.flatten()) if cond is None else (c_in * x, c_noise.flatten(), cond)
        F_x = network_output(self.net(*args, **net_kwargs))  # diffusers models return an object with .sample
        if not isinstance(F_x, torch.Tensor) or F_x.shape != x.shape:
            raise ValueError(f"the network returned {tuple(getattr(F_x, 'shape', ()))} for input {tuple(x.shape)}: "
                             "Precond needs an output shaped like its input (same channels); check the net's "
                             "out_channels")
        D = c_skip * x + c_out * F_x.to(x.dtype)
        return torch.where(sigma == 0, x, D)


class _SigmaLoss(SpectralHookLoss):
    """Per-sample mean of lambda(sigma) (D(x0 + sigma eps; sigma) - x0)^2, + lambda_spec * w * L_S(D, x0).

    EDM itself sums the per-element loss; we take the per-sample mean over non-batch dims so magnitudes do not
    scale with resolution. ``__call__(denoiser, x0, cond=None, generator=None, return_parts=False) -> (B,)``.

    Call convention: ``denoiser(x, sigma[, cond]) -> x0_hat`` with sigma shaped (B, 1, ..., 1) (it broadcasts
    against x), whereas the samplers pass sigma (B,); ``Precond`` accepts both. A denoiser that wants (B,)
    only (e.g. a k-diffusion ``Denoiser``) needs ``lambda x, sigma: model(x, sigma.flatten())``. An output
    object with ``.sample`` (diffusers) is unwrapped.
    """

    def sample_sigma(self, n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        """Draw n noise levels (n,)."""
        raise NotImplementedError

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """The loss weight lambda(sigma)."""
        raise NotImplementedError

    def __call__(self, denoiser: Denoiser, x0: torch.Tensor, cond: Any = None,
                 generator: torch.Generator | None = None, return_parts: bool = False
                 ) -> torch.Tensor | dict[str, torch.Tensor]:
        check_x0(x0)
        sigma = self.sample_sigma(x0.shape[0], generator, x0).reshape(-1, *([1] * (x0.ndim - 1)))
        n = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) * sigma
        x0_hat = denoiser(x0 + n, sigma) if cond is None else denoiser(x0 + n, sigma, cond)  # Eq. 6
        x0_hat = network_output(x0_hat)
        lam = self.weight(sigma)
        l_diff = per_sample_mean(lam * (x0_hat - x0) ** 2)  # Eq. 7 in x0 space: (B, ...) -> (B,)
        return self._add_spectral(l_diff, x0_hat, x0, sigma.flatten(), lam.flatten(), None, return_parts)


class EDMLoss(_SigmaLoss):
    """EDM loss: ln sigma ~ N(P_mean, P_std^2), lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2.

    ``weighting="weighted"`` (default) multiplies the spectral term by this lambda_EDM: the paper's "weighted"
    image setting; "unweighted" is its other one. See ``_SigmaLoss`` for the call and reduction.
    """

    def __init__(self, P_mean: float = -1.2, P_std: float = 1.2, sigma_data: float = 0.5,
                 regularizer: Regularizer | None = None) -> None:
        super().__init__(regularizer)
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, check_positive(sigma_data, "sigma_data")

    def sample_sigma(self, n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        """ln sigma ~ N(P_mean, P_std^2)."""
        z = torch.randn(n, generator=generator, device=like.device, dtype=like.dtype)
        return (z * self.P_std + self.P_mean).exp()

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda_EDM(sigma) (Eq. 7), see ``lambda_edm``."""
        return lambda_edm(sigma, self.sigma_data)


class VPLoss(_SigmaLoss):
    """VP loss: t ~ U(epsilon_t, 1), sigma = sigma_VP(t), lambda(sigma) = 1/sigma^2 (see ``_SigmaLoss``)."""

    def __init__(self, beta_d: float = 19.9, beta_min: float = 0.1, epsilon_t: float = 1e-5,
                 regularizer: Regularizer | None = None) -> None:
        super().__init__(regularizer)
        self.beta_d, self.beta_min, self.epsilon_t = beta_d, beta_min, epsilon_t

    def sample_sigma(self, n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        """t = 1 + u (epsilon_t - 1), u ~ U(0, 1); sigma = sigma_VP(t)."""
        u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
        return vp_sigma(1 + u * (self.epsilon_t - 1), self.beta_d, self.beta_min).to(like.dtype)

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(sigma) = 1 / sigma^2."""
        return 1 / sigma**2


class VELoss(_SigmaLoss):
    """VE loss: sigma log-uniform in [sigma_min, sigma_max], lambda = 1/sigma^2 (see ``_SigmaLoss``)."""

    def __init__(self, sigma_min: float = 0.02, sigma_max: float = 100.0,
                 regularizer: Regularizer | None = None) -> None:
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        super().__init__(regularizer)
        self.sigma_min, self.sigma_max = sigma_min, sigma_max

    def sample_sigma(self, n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        """sigma = sigma_min (sigma_max / sigma_min)^u, u ~ U(0, 1)."""
        u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** u

    def weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """lambda(sigma) = 1 / sigma^2."""
        return 1 / sigma**2


def sigma_steps(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0
                ) -> torch.Tensor:
    """EDM steps (float64): sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho, then 0."""
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")
    if not 0 <= sigma_min < sigma_max < math.inf or not 0 < rho < math.inf:
        raise ValueError(f"need 0 <= sigma_min < sigma_max < inf and 0 < rho < inf, "
                         f"got {sigma_min}, {sigma_max}, {rho}")
    i = torch.arange(num_steps, dtype=torch.float64) / max(num_steps - 1, 1)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    levels = (hi + i * (lo - hi)) ** rho
    if not (levels[1:] < levels[:-1]).all():  # float64 ran out of digits: the steps would repeat a noise level
        raise ValueError(f"rho={rho} over sigma in [{sigma_min}, {sigma_max}] gives {num_steps} steps that are not "
                         "strictly decreasing in float64; use a smaller rho (EDM: 7) or a wider sigma range")
    return torch.cat([levels, torch.zeros(1, dtype=torch.float64)])


def sampler_sigmas(denoiser: Any, num_steps: int, sigma_min: float = 0.002, sigma_max: float = 80.0,
                   rho: float = 7.0) -> torch.Tensor:
    """``sigma_steps`` with the range clamped to the network's: max(sigma_min, net.sigma_min), min(...max)."""
    lo = max(sigma_min, float(getattr(denoiser, "sigma_min", 0.0)))
    hi = min(sigma_max, float(getattr(denoiser, "sigma_max", math.inf)))
    return sigma_steps(num_steps, lo, hi, rho)


def _check_sigmas(sigmas: torch.Tensor | Sequence[float]) -> list[float]:
    s = torch.as_tensor(sigmas, dtype=torch.float64)
    if s.ndim != 1 or s.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D schedule of >= 2 noise levels, got shape {tuple(s.shape)}")
    if not bool(s.isfinite().all()) or bool((s < 0).any()) or bool((s[1:] >= s[:-1]).any()):
        raise ValueError("sigmas must be finite, non-negative and strictly decreasing (e.g. sigma_steps(...))")
    return s.tolist()


def _check_churn(S_churn: float, S_min: float, S_max: float, S_noise: float) -> None:
    """EDM's churn settings: S_churn, S_min, S_noise finite and >= 0, S_max >= S_min (may be inf); NaN anywhere
    would turn every image into NaN (or silently switch churn off)."""
    if not (0 <= S_churn < math.inf and 0 <= S_min < math.inf and S_max >= S_min and 0 <= S_noise < math.inf):
        raise ValueError(f"need finite S_churn >= 0, S_min >= 0, S_noise >= 0 and S_max >= S_min (inf allowed), "
                         f"got S_churn={S_churn}, S_min={S_min}, S_max={S_max}, S_noise={S_noise}")


@torch.no_grad()
def _ode_sample(denoise: Denoiser, latents: torch.Tensor, sigmas: torch.Tensor | Sequence[float], heun: bool,
                S_churn: float, S_min: float, S_max: float, S_noise: float, generator: torch.Generator | None,
                callback: Callable | None) -> torch.Tensor:
    """EDM Algorithm 2 (Heun) or its Euler variant, with optional stochastic churn."""
    s = _check_sigmas(sigmas)
    _check_churn(S_churn, S_min, S_max, S_noise)
    N = len(s) - 1
    x = latents * s[0]
    for i, (s_cur, s_next) in enumerate(zip(s[:-1], s[1:])):
        gamma = min(S_churn / N, math.sqrt(2) - 1) if S_min <= s_cur <= S_max else 0.0
        s_hat = s_cur * (1 + gamma)
        if gamma > 0:  # churn: raise the noise level from s_cur to s_hat
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = x + math.sqrt(s_hat**2 - s_cur**2) * S_noise * z
        x0_hat = denoise(x, x.new_full((x.shape[0],), s_hat))
        d = (x - x0_hat) / s_hat  # dx/dsigma of the probability-flow ODE
        x_next = x + (s_next - s_hat) * d  # Euler step
        if heun and s_next > 0:  # Heun correction (2nd order), skipped on the step to sigma = 0
            d_next = (x_next - denoise(x_next, x.new_full((x.shape[0],), s_next))) / s_next
            x_next = x + (s_next - s_hat) * (0.5 * d + 0.5 * d_next)
        x = x_next
        if callback is not None:
            callback({"i": i, "sigma": s_cur, "sigma_hat": s_hat, "x": x, "x0_hat": x0_hat})
    return x


def heun_sample(denoise: Denoiser, latents: torch.Tensor, sigmas: torch.Tensor | Sequence[float],
                S_churn: float = 0.0, S_min: float = 0.0, S_max: float = math.inf, S_noise: float = 1.0,
                generator: torch.Generator | None = None, callback: Callable | None = None) -> torch.Tensor:
    """EDM's Heun sampler (Algorithm 2): ``denoise(x, sigma (B,))`` = D(x; sigma), returns x at sigmas[-1].

    latents ~ N(0, I) are scaled by sigmas[0]; sigmas[-1] is 0 for ``sigma_steps``. NFE = 2N - 1. Runs in
    the latents' dtype (EDM runs float64: pass float64 latents for that).
    """
    return _ode_sample(denoise, latents, sigmas, True, S_churn, S_min, S_max, S_noise, generator, callback)


def euler_sample(denoise: Denoiser, latents: torch.Tensor, sigmas: torch.Tensor | Sequence[float],
                 S_churn: float = 0.0, S_min: float = 0.0, S_max: float = math.inf, S_noise: float = 1.0,
                 generator: torch.Generator | None = None, callback: Callable | None = None) -> torch.Tensor:
    """Euler sampler of the probability-flow ODE, same contract as ``heun_sample``; NFE = N."""
    return _ode_sample(denoise, latents, sigmas, False, S_churn, S_min, S_max, S_noise, generator, callback)
