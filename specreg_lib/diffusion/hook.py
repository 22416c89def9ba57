"""The spectral hook shared by every diffusion loss: L = L_diff + lambda_spec * w * L_S(x0_hat, x0) (Eq. 17).

This is the only place the spectral term is computed, for DDPM/DDIM and for EDM (VP/VE/EDM) alike, and for a
training loop you already have (the drop-in, :func:`spectral_term`):

    loss = your_per_sample_loss + reg(x0_hat, x0, t=t, schedule=schedule)    # DDPM family
    loss = your_per_sample_loss + reg(x0_hat, x0, sigma=sigma)               # EDM / k-diffusion style

The term is described by ONE picklable value, :class:`Regularizer` (which L_S, its options, lambda_spec, the
time weighting w), passed as ``regularizer=`` to every diffusion loss; ``None`` (the default) is the baseline.
``reg(...)`` runs the same computation (:func:`weighted_spectral_term`) as ``DDPMLoss`` / ``EDMLoss`` do
internally, so for the same x0_hat, x0 and noise level it adds exactly what they add (tested bit for bit).
Nothing here synchronises with the host.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from ..spectral import SpectralLoss
from .schedules import DDPMSchedule, ddpm_noise_level
from .weighting import SpectralWeighting, as_weighting, lambda_edm

# The losses' own default weighting, by the form of their noise level: DDPM steps t -> "alpha_bar" (our choice,
# see weighting.py), EDM / VP / VE sigma -> "weighted" (the paper's lambda_EDM).
DEFAULT_WEIGHTING = {"t": "alpha_bar", "sigma": "weighted"}


@runtime_checkable
class SpectralFn(Protocol):
    """Any picklable callable ``spectral(x0_hat, x0) -> (B,)``, e.g. ``specreg_lib.spectral.SpectralLoss``."""

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Regularizer:
    """The spectral term of Eq. 17 as one value: ``lambda_spec * w(sigma) * L_S(x0_hat, x0)``.

    ``kind``: a ``SpectralLoss`` kind ("amp" Eq. 14, "amp_phase" Eq. 15, "wavelet" Eq. 16) built with
    ``options`` (e.g. ``{"wave": "haar", "levels": 2}``), or any picklable ``SpectralFn`` (then no options).
    ``weighting``: a kind name or a ``SpectralWeighting`` (see ``weighting.py``); ``None`` = the loss's own
    documented default (DDPM "alpha_bar", EDM/VP/VE "weighted"). Validated at construction; equal by value;
    ``to_dict``/``from_dict`` round-trip it through JSON (kinds by name: built-in or ``spectral.register_kind``).
    """

    kind: str | SpectralFn
    lambda_spec: float = 1.0
    weighting: SpectralWeighting | str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lam = self.lambda_spec
        if isinstance(lam, bool) or not isinstance(lam, int | float) or not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lambda_spec must be a finite number >= 0, got {lam!r}")
        object.__setattr__(self, "lambda_spec", float(lam))
        if isinstance(self.weighting, str):
            object.__setattr__(self, "weighting", as_weighting(self.weighting))
        elif isinstance(self.weighting, dict):  # from JSON
            object.__setattr__(self, "weighting", SpectralWeighting(**self.weighting))
        elif self.weighting is not None and not isinstance(self.weighting, SpectralWeighting):
            raise TypeError(f"weighting must be a name, a SpectralWeighting or None, got {type(self.weighting)}")
        object.__setattr__(self, "options", dict(self.options))
        if isinstance(self.kind, str):
            # Validates kind and every option now, not at step 1; kept for the drop-in call (not a field).
            object.__setattr__(self, "_spectral", SpectralLoss(self.kind, **self.options))
        elif callable(self.kind):
            if self.options:
                raise TypeError("options apply to built-in kinds only; set them on your SpectralFn itself (e.g. "
                                "functools.partial) and pass no options")
        else:
            raise TypeError(f"kind must be a SpectralLoss kind name or a callable (x0_hat, x0) -> (B,), "
                            f"got {type(self.kind).__name__}")

    def spectral_loss(self) -> SpectralFn:
        """L_S as a picklable callable (B, C, *S) x2 -> (B,)."""
        if not isinstance(self.kind, str):
            return self.kind
        if "_spectral" not in self.__dict__:  # a Regularizer pickled before the cache existed
            object.__setattr__(self, "_spectral", SpectralLoss(self.kind, **self.options))
        return self.__dict__["_spectral"]

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor, **noise_level: Any
                 ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Drop-in: ``lambda_spec * w * L_S(x0_hat, x0)`` (B,) to add to your own per-sample loss.

        The noise level as your code has it: ``t=, schedule=`` (DDPM) or ``sigma=`` (EDM, (B,) or (B, 1, 1, 1));
        see :func:`spectral_term` for every keyword.
        """
        return spectral_term(self, x0_hat, x0, **noise_level)

    def weight(self, **noise_level: Any) -> torch.Tensor:
        """The time weight w (B,) at ``t=, schedule=`` or ``sigma=`` (see :func:`time_weight`)."""
        return time_weight(self, **noise_level)

    @property
    def name(self) -> str:
        """A short label: the kind, or the wavelet's name for "wavelet" (e.g. "haar", "bior1.3")."""
        if not isinstance(self.kind, str):
            return type(self.kind).__name__
        return str(self.options.get("wave", "haar")) if self.kind == "wavelet" else self.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (built-in kinds only)."""
        if not isinstance(self.kind, str):
            raise TypeError("a Regularizer with a custom SpectralFn cannot be written to JSON")
        w = dataclasses.asdict(self.weighting) if isinstance(self.weighting, SpectralWeighting) else None
        return {"kind": self.kind, "lambda_spec": self.lambda_spec, "weighting": w, "options": dict(self.options)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Regularizer:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        unknown = sorted(set(d) - {"kind", "lambda_spec", "weighting", "options"})
        if unknown:
            raise ValueError(f"unknown Regularizer field(s) {unknown}; valid: kind, lambda_spec, weighting, options")
        return cls(**d)


def resolve_weighting(weighting: Regularizer | SpectralWeighting | str | None, form: str) -> SpectralWeighting:
    """The weighting to use: a Regularizer's, a kind name's or the given one; None (or a Regularizer without one)
    = the default for the noise level's ``form``, "t" (DDPM steps) or "sigma" (``DEFAULT_WEIGHTING``)."""
    if isinstance(weighting, Regularizer):
        weighting = weighting.weighting
    return as_weighting(DEFAULT_WEIGHTING[form] if weighting is None else weighting)


def check_x0(x0: object, name: str = "x0") -> torch.Tensor:
    """Require clean data as a non-empty floating-point tensor (B, C, *S) with B >= 1; return it."""
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, C, *S), got {type(x0).__name__}")
    if not x0.is_floating_point():
        raise TypeError(f"{name} has dtype {x0.dtype}; diffusion adds Gaussian noise to real data: convert it, "
                        "e.g. x.float() / 127.5 - 1 for uint8 images")
    if x0.ndim < 2 or x0.shape[0] == 0 or x0.numel() == 0:
        raise ValueError(f"{name} has shape {tuple(x0.shape)}: need (B, C, *S) with B >= 1 and no empty axis; "
                         "check the batch size / data loader")
    return x0


def check_positive(value: object, name: str) -> float:
    """Require a finite number > 0 (e.g. sigma_data); return it as float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def guarded_weight(weighting: SpectralWeighting, sigma: torch.Tensor, lam: torch.Tensor, t: torch.Tensor | None,
                   dtype: torch.dtype) -> torch.Tensor:
    """w (B,) in ``dtype``, 0 where sigma is infinite: at alpha_bar_t = 0 (the last step of a zero-terminal-SNR
    schedule) x0_hat carries no information, so those samples are excluded whatever the weighting."""
    w = weighting(sigma, lam, t).to(dtype)  # (B,)
    return torch.where(torch.isinf(sigma), torch.zeros_like(w), w)  # excluded steps (exact w elsewhere)


def weighted_spectral_term(x0_hat: torch.Tensor, x0: torch.Tensor, *, spectral: SpectralFn, lambda_spec: float,
                           weighting: SpectralWeighting, sigma: torch.Tensor, lam: torch.Tensor,
                           t: torch.Tensor | None, dtype: torch.dtype
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lambda_spec * w * L_S(x0_hat, x0), L_S, w), each (B,) in ``dtype``: the one computation of Eq. 17's term.

    sigma, lam, t: (B,) noise level, the loss's own x0-space weight, DDPM steps (or None). x0 and w carry no
    gradient, so it reaches the net through x0_hat only; w is 0 where sigma is infinite (``guarded_weight``).
    """
    sigma = sigma.detach()
    w = guarded_weight(weighting, sigma, lam.detach(), t, dtype)
    # In training a NaN/Inf x0_hat must reach the loss (and the loop's NaN guard, which skips the step
    # and says whether data or model produced it) instead of raising mid-step: no input check here.
    kw = {"check_finite": False} if isinstance(spectral, SpectralLoss) else {}
    l_spec = spectral(x0_hat, x0.detach(), **kw)
    if l_spec.shape != (x0.shape[0],):
        raise ValueError(f"spectral loss must return per-sample values ({x0.shape[0]},), got {tuple(l_spec.shape)}")
    return lambda_spec * w * l_spec.to(dtype), l_spec, w


def network_output(out: Any) -> torch.Tensor:
    """A network's output as a tensor; diffusers' output objects (``UNet2DOutput`` etc.) give their ``.sample``."""
    if isinstance(out, torch.Tensor):
        return out
    sample = getattr(out, "sample", None)
    if isinstance(sample, torch.Tensor):
        return sample
    raise TypeError(f"the network returned a {type(out).__name__}, not a tensor; adapt it in one line, e.g. "
                    "net = lambda x, t: unet(x, t)[0]  (or .sample, or your output's tensor field)")


def per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over all non-batch dims: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


class SpectralHookLoss:
    """Base of the diffusion losses: holds the regularizer and adds the spectral term (Eq. 17)."""

    noise_form = "sigma"  # how the loss gives its noise level, "t" or "sigma": picks its DEFAULT_WEIGHTING

    def __init__(self, regularizer: Regularizer | None) -> None:
        if regularizer is not None and not isinstance(regularizer, Regularizer):
            raise TypeError(f"regularizer must be a Regularizer or None, got {type(regularizer).__name__}; "
                            "e.g. Regularizer('amp_phase', lambda_spec=1.0)")
        self.regularizer = regularizer
        self.spectral = regularizer.spectral_loss() if regularizer is not None else None
        self.lambda_spec = regularizer.lambda_spec if regularizer is not None else 0.0
        self.weighting = resolve_weighting(regularizer, self.noise_form)

    @property
    def regularized(self) -> bool:
        """Whether the spectral term is on (a regularizer with ``lambda_spec > 0``)."""
        return self.spectral is not None and self.lambda_spec > 0

    def _add_spectral(self, l_diff: torch.Tensor, x0_hat: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor,
                      lam: torch.Tensor, t: torch.Tensor | None, return_parts: bool
                      ) -> torch.Tensor | dict[str, torch.Tensor]:
        """l_diff (B,) + lambda_spec * w * L_S(x0_hat, x0); gradients reach the net via x0_hat only."""
        if not self.regularized:
            loss, term, l_spec, w = l_diff, *(torch.zeros_like(l_diff) for _ in range(3))
        else:
            term, l_spec, w = weighted_spectral_term(x0_hat, x0, spectral=self.spectral, lambda_spec=self.lambda_spec,
                                                     weighting=self.weighting, sigma=sigma, lam=lam, t=t,
                                                     dtype=l_diff.dtype)
            loss = l_diff + term  # Eq. 17
        if not return_parts:
            return loss
        parts = {"loss": loss, "diffusion": l_diff, "term": term, "spectral": l_spec, "weight": w,
                 "sigma": sigma.detach()}
        if t is not None:
            parts["t"] = t
        return parts

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


# The drop-in: the same term for a training loop you already have.


def _per_sample_sigma(sigma: torch.Tensor | float, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """sigma as a scalar, (B,) or (B, 1, ..., 1) -> (B,) on like's device (shape checks only: no sync)."""
    B = like.shape[0]
    s = torch.as_tensor(sigma, device=like.device).to(dtype)
    if s.numel() == 1:
        return s.reshape(1).expand(B)
    if s.numel() != B or s.shape[0] != B or any(n != 1 for n in s.shape[1:]):
        raise ValueError(f"sigma of shape {tuple(s.shape)} is not one noise level per sample for x0 of shape "
                         f"{tuple(like.shape)}; pass a scalar, ({B},) or ({B}, 1, ..., 1)")
    return s.reshape(B)


def _noise_level(x0: torch.Tensor, dtype: torch.dtype, t: torch.Tensor | None, schedule: DDPMSchedule | None,
                 sigma: torch.Tensor | float | None, lam: torch.Tensor | None, sigma_data: float, norm: str
                 ) -> tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(form, sigma (B,), lam (B,), t or None) from either noise-level form."""
    if (t is None) == (sigma is None):
        raise ValueError("give the noise level once: t=(B,) step indices with schedule=DDPMSchedule(...), "
                         "or sigma=(B,) / (B, 1, 1, 1) noise levels")
    if t is not None:
        if not isinstance(schedule, DDPMSchedule):
            raise TypeError("t needs schedule=DDPMSchedule(...), e.g. DDPMSchedule.from_diffusers(scheduler) or "
                            f"DDPMSchedule.from_alphas_cumprod(alphas_cumprod); got {type(schedule).__name__}")
        t = torch.as_tensor(t, device=x0.device)
        if t.shape != (x0.shape[0],):
            raise ValueError(f"t must have shape ({x0.shape[0]},) (one step per sample), got {tuple(t.shape)}")
        s, own = ddpm_noise_level(schedule, t, x0.new_empty(0, dtype=dtype), norm)
        form = "t"
    else:
        if schedule is not None:
            raise ValueError("schedule only goes with t; with sigma give no schedule")
        s, form = _per_sample_sigma(sigma, x0, dtype), "sigma"
        own = lambda_edm(s, sigma_data)  # the EDM loss's own weight; pass lam= for VP / VE (1 / sigma^2)
    if lam is not None:
        own = _per_sample_sigma(lam, x0, dtype)  # same shape rules as sigma
    return form, s, own, t


def _dtype(x0: torch.Tensor) -> torch.dtype:
    """The term's dtype: x0's if float32/float64, else float32 (half-precision data; the losses run in float32)."""
    return x0.dtype if x0.dtype in (torch.float32, torch.float64) else torch.float32


def time_weight(weighting: Regularizer | SpectralWeighting | str | None, *, like: torch.Tensor,
                t: torch.Tensor | None = None, schedule: DDPMSchedule | None = None,
                sigma: torch.Tensor | float | None = None, lam: torch.Tensor | None = None,
                sigma_data: float = 0.5, norm: str = "l2") -> torch.Tensor:
    """The spectral term's time weight w (B,) at DDPM steps ``t`` (with ``schedule``) or noise levels ``sigma``.

    ``weighting``: a Regularizer (its weighting, or the default for the form), a kind name or a
    ``SpectralWeighting``; None = the default ("alpha_bar" with t, "weighted" with sigma). ``like``: a (B, ...)
    tensor giving batch size, device and dtype. Other keywords as :func:`spectral_term`.
    """
    dtype = _dtype(like)
    form, s, own, t = _noise_level(like, dtype, t, schedule, sigma, lam, sigma_data, norm)
    return guarded_weight(resolve_weighting(weighting, form), s, own, t, dtype)  # alpha_bar = 0: excluded


def spectral_term(reg: Regularizer, x0_hat: torch.Tensor, x0: torch.Tensor, *, t: torch.Tensor | None = None,
                  schedule: DDPMSchedule | None = None, sigma: torch.Tensor | float | None = None,
                  lam: torch.Tensor | None = None, sigma_data: float = 0.5, norm: str = "l2",
                  return_parts: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
    """``lambda_spec * w * L_S(x0_hat, x0)`` per sample (B,), to add to your own per-sample diffusion loss.

    x0_hat, x0: (B, C, *S), x0_hat carrying the graph (from ``predict_eps_x0`` for eps / v / x0 outputs, or your
    denoiser's D(x; sigma)). The noise level, one of:
      - ``t`` (B,) integer steps with ``schedule`` (a ``DDPMSchedule``, e.g. ``from_diffusers(scheduler)``):
        sigma_t = sqrt((1 - abar_t) / abar_t); the default weighting is "alpha_bar" (as ``DDPMLoss``);
      - ``sigma``: a scalar, (B,) or (B, 1, ..., 1) (the same loss); the default weighting is "weighted"
        (lambda_EDM with ``sigma_data``, as ``EDMLoss``).
    ``lam`` overrides your loss's own x0-space weight, used only by weighting="weighted" (default: SNR(t) for
    an L2 eps loss, sqrt(SNR(t)) with ``norm="l1"``, lambda_EDM(sigma); VP / VE losses: ``lam=1 / sigma**2``).
    Samples at alpha_bar_t = 0 (zero terminal SNR) get w = 0. With ``lambda_spec = 0`` the result is zeros
    and L_S is not evaluated. ``return_parts=True``: a dict with 'term', 'spectral', 'weight', 'sigma'.
    """
    if not isinstance(reg, Regularizer):
        raise TypeError(f"reg must be a Regularizer, e.g. Regularizer('amp', lambda_spec=0.1); "
                        f"got {type(reg).__name__}")
    dtype = _dtype(x0)
    form, s, own, t = _noise_level(x0, dtype, t, schedule, sigma, lam, sigma_data, norm)
    if reg.lambda_spec > 0:
        term, l_spec, w = weighted_spectral_term(x0_hat, x0, spectral=reg.spectral_loss(), lambda_spec=reg.lambda_spec,
                                                 weighting=resolve_weighting(reg, form), sigma=s, lam=own, t=t,
                                                 dtype=dtype)
    else:
        term = l_spec = w = torch.zeros(x0.shape[0], device=x0.device, dtype=dtype)
    return {"term": term, "spectral": l_spec, "weight": w, "sigma": s} if return_parts else term
