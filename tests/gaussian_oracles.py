"""Test oracles: exact denoisers of Gaussian data x0 ~ N(mu, s^2) per element, closed forms to test samplers
end to end. They live with the tests, not in the shipped library."""

from __future__ import annotations

import math

import torch

from specreg_lib.diffusion.ddpm import PARAMETRIZATIONS
from specreg_lib.diffusion.edm import KINDS, as_sigma, preconditioning, vp_sigma
from specreg_lib.diffusion.schedules import DDPMSchedule


class GaussianDenoiser:
    """D(x; sigma) = E[x0 | x0 + sigma eps = x] = mu + s^2 / (s^2 + sigma^2) (x - mu)."""

    def __init__(self, mu: float, s: float, sigma_min: float = 0.0, sigma_max: float = math.inf) -> None:
        self.mu, self.s, self.sigma_min, self.sigma_max = mu, s, sigma_min, sigma_max

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float, cond: object = None) -> torch.Tensor:
        sigma = as_sigma(sigma, x)
        return self.mu + self.s**2 / (self.s**2 + sigma**2) * (x - self.mu)


class GaussianRawNet:
    """The raw network F that ``Precond(F, kind)`` turns into the exact ``GaussianDenoiser``.

    It recovers sigma from c_noise (EDM: exp(4 c_noise); VE: 2 exp(c_noise); VP: sigma_VP(c_noise / (M - 1)))
    and returns F = (D(x) - c_skip x) / c_out.
    """

    def __init__(self, mu: float, s: float, kind: str = "edm", sigma_data: float = 0.5, beta_d: float = 19.9,
                 beta_min: float = 0.1, M: int = 1000) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self.denoiser = GaussianDenoiser(mu, s)
        self.kind, self.sigma_data, self.beta_d, self.beta_min, self.M = kind, sigma_data, beta_d, beta_min, M

    def __call__(self, x_in: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        c = c_noise.double()
        sigma = {"edm": lambda: (4 * c).exp(), "ve": lambda: 2 * c.exp(),
                 "vp": lambda: vp_sigma(c / (self.M - 1), self.beta_d, self.beta_min)}[self.kind]()
        sigma = sigma.to(x_in.dtype).reshape(-1, *([1] * (x_in.ndim - 1)))
        c_skip, c_out, c_in, _ = preconditioning(self.kind, sigma, self.sigma_data, beta_d=self.beta_d,
                                                 beta_min=self.beta_min, M=self.M)
        x = x_in / c_in
        return (self.denoiser(x, sigma) - c_skip * x) / c_out


class GaussianDDPMModel:
    """The exact DDPM network for N(mu, s^2) data on ``schedule``, output in the given parametrisation.

    x0_hat = mu + s^2 sqrt(abar) / (abar s^2 + 1 - abar) (x_t - sqrt(abar) mu), eps_hat from Eq. 2.
    With ``model_steps`` (floats, e.g. from ``align_steps``) t is read as a continuous training step and
    alpha_bar is interpolated linearly in t.
    """

    def __init__(self, schedule: DDPMSchedule, mu: float, s: float, parametrization: str = "eps") -> None:
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"unknown parametrization {parametrization!r}")
        self.schedule, self.mu, self.s, self.parametrization = schedule, mu, s, parametrization

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar at integer or continuous steps t (B,), float64."""
        ab = self.schedule.alpha_bar
        tf = t.double().cpu().clamp(0, self.schedule.T - 1)
        lo = tf.floor().long().clamp(max=self.schedule.T - 1)
        hi = (lo + 1).clamp(max=self.schedule.T - 1)
        a_lo, a_hi = ab.index_select(0, lo), ab.index_select(0, hi)
        return a_lo + (tf - lo.double()) * (a_hi - a_lo)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: object = None) -> torch.Tensor:
        if t.numel() and bool(t.min() == t.max()):  # a sampler's step: one python float is much faster
            ab = float(self.alpha_bar(t[:1]))
            a, b = math.sqrt(ab), math.sqrt(1 - ab)
        else:
            ab = self.alpha_bar(t).to(x_t).reshape(-1, *([1] * (x_t.ndim - 1)))
            a, b = ab.sqrt(), (1 - ab).sqrt()
        s2 = self.s**2
        x0 = self.mu + s2 * a / (ab * s2 + 1 - ab) * (x_t - a * self.mu)
        eps = (x_t - a * x0) / b
        return {"eps": eps, "x0": x0, "v": a * eps - b * x0}[self.parametrization]
