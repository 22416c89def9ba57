"""``SpectralLoss``: the one picklable callable the diffusion losses hold for L_S in Eq. 17, and the kind registry."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from ._checks import check_bins, check_norm
from .fourier import COUPLINGS, amplitude_loss, amplitude_phase_loss
from .wavelet import MODES, _filters, wavelet_loss

KINDS: dict[str, Callable[..., torch.Tensor]] = {
    "amp": amplitude_loss, "amp_phase": amplitude_phase_loss, "wavelet": wavelet_loss}
_REQUIRED = ("check_finite", "bins")  # keyword options every kind takes (the hook and the audio loss pass them)


def register_kind(name: str, fn: Callable[..., torch.Tensor] | None = None) -> Any:
    """Make ``fn`` the spectral loss kind ``name`` (for SpectralLoss, Regularizer, configs); returns ``fn``.

    Also a decorator: ``@register_kind("l1")``. ``fn(x0_hat, x0, *, <options>, check_finite=True, bins="mean")``
    -> (B,), see the package docstring. Registering the same function again is a no-op; another one is an error.
    """
    if fn is None:
        return lambda f: register_kind(name, f)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a spectral loss kind needs a non-empty string name, got {name!r}")
    if not callable(fn):
        raise TypeError(f"register_kind({name!r}, fn): fn must be callable, got {type(fn).__name__}")
    if name in KINDS:
        if KINDS[name] is fn:
            return fn
        raise ValueError(f"spectral loss kind {name!r} is already registered (to {KINDS[name].__qualname__}); "
                         "pick another name")
    params = inspect.signature(fn).parameters
    missing = [p for p in _REQUIRED if p not in params]
    if len(params) < 2 or missing:
        raise TypeError(f"register_kind({name!r}, fn): fn must take (x0_hat, x0, *, <options>, check_finite=True, "
                        f"bins='mean'); it lacks {missing or ['(x0_hat, x0)']}")
    KINDS[name] = fn
    return fn


class SpectralLoss:
    """L_S of Eq. 17: ``kind`` in {"amp" (Eq. 14), "amp_phase" (Eq. 15), "wavelet" (Eq. 16)} or a registered
    kind, with that function's keyword options (``bins="sum"`` for L1 norms over bins); -> (B,)."""

    def __init__(self, kind: str, **options: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown spectral loss kind {kind!r}; choose one of {', '.join(KINDS)} "
                             "(or add one with specreg_lib.spectral.register_kind)")
        params = list(inspect.signature(KINDS[kind]).parameters)[2:]  # all but (x0_hat, x0)
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise TypeError(f"SpectralLoss({kind!r}) got unknown option(s) {unknown}; valid: {params}")
        # Fail at construction, not at the first training step, for the string options.
        if "norm" in options:
            check_norm(options["norm"])
        check_bins(options.get("bins", "mean"))
        if options.get("coupling", COUPLINGS[0]) not in COUPLINGS:
            raise ValueError(f"unknown coupling {options['coupling']!r}; choose one of {', '.join(COUPLINGS)}")
        if options.get("mode", MODES[0]) not in MODES:
            raise ValueError(f"unknown mode {options['mode']!r}; choose one of {', '.join(MODES)}")
        if "wave" in options:
            _filters(options["wave"])
        self.kind = kind
        self.options = dict(options)

    def __call__(self, x0_hat: torch.Tensor, x0: torch.Tensor, **override: Any) -> torch.Tensor:
        """Per-sample spectral loss between the predicted and the true clean sample: (B, C, *S) -> (B,).

        ``override`` replaces options for this call only (the diffusion hook passes ``check_finite=False``)."""
        return KINDS[self.kind](x0_hat, x0, **{**self.options, **override})

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"SpectralLoss({self.kind!r}{opts})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpectralLoss) and (self.kind, self.options) == (other.kind, other.options)

    __hash__ = None  # mutable options dict: equal by value, not hashable
