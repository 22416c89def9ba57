"""``SpectralLoss``: the one picklable callable the diffusion losses hold for L_S in Eq. 17."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ._checks import check_norm
from .fourier import COUPLINGS, amplitude_loss, amplitude_phase_loss
from .wavelet import MODES, _filters, wavelet_loss

KINDS = {"amp": amplitude_loss, "amp_phase": amplitude_phase_loss, "wavelet": wavelet_loss}


class SpectralLoss:
    """L_S of Eq. 17: ``kind`` in {"amp" (Eq. 14), "amp_phase" (Eq. 15), "wavelet" (Eq. 16)}; -> (B,)."""

    def __init__(self, kind: str, **options: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown spectral loss kind {kind!r}; choose one of {', '.join(KINDS)}")
        params = list(inspect.signature(KINDS[kind]).parameters)[2:]  # all but (x0_hat, x0)
        unknown = sorted(set(options) - set(params))
        if unknown:
            raise TypeError(f"SpectralLoss({kind!r}) got unknown option(s) {unknown}; valid: {params}")
        # Fail at construction, not at the first training step, for the string options.
        if "norm" in options:
            check_norm(options["norm"])
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
