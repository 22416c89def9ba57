"""Fourier regularizers: the amplitude loss (Eq. 14) and the amplitude-phase loss (Eq. 15).

Choices the paper leaves open (paper.md 1.2 (a)-(d)), all explicit keyword options:
* ``norm``: FFT normalisation as in ``torch.fft`` (default ``"ortho"``: Parseval holds bin for bin).
* ``bins``: the reduction over channels and ALL N = C * prod(S) bins of the full two-sided DFT: ``"mean"``
  (default) or ``"sum"`` (the L1 norms ||.||_1 of Eqs. 14-15 as written; "sum" = N x "mean" for Eq. 14 and
  per-frequency Eq. 15). We compute a one-sided ``rfftn`` and weight its last-axis bins (1 for the
  self-conjugate DC/Nyquist columns, 2 for the others), which gives exactly the two-sided value at half the
  cost: |F x|(-k) = |F x|(k) for real x.
* Eq. 15 ``coupling``: ``"per_frequency"`` (mean of |dA| (1 + |dphi|), the prose's reading) or ``"global"``
  (mean|dA| (1 + mean|dphi|), the formula read literally); ``wrap_phase`` maps dphi into [-pi, pi].
* ``phase_eps``: gradient safety of the phase term, see ``_PhaseDifference``.
"""

from __future__ import annotations

import torch

from ._checks import check_bins, check_norm, check_pair, full_precision

COUPLINGS = ("per_frequency", "global")


def _rfft_pair(x0_hat: torch.Tensor, x0: torch.Tensor, ndim: int, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One-sided spectra of both inputs over the last ``ndim`` axes: (B, C, *S) -> 2 x (B, C, *S[:-1], S[-1]//2+1)."""
    dims = tuple(range(-ndim, 0))
    if x0.requires_grad:
        # Both need gradients: one batched transform of the stacked pair.
        F_hat, F = torch.fft.rfftn(torch.cat([x0_hat, x0]), dim=dims, norm=norm).chunk(2)
        return F_hat, F
    # Usual case (x0 is data): the target's transform needs no backward, so keep it out of the graph;
    # this halves the backward FFT work compared with transforming the stacked pair.
    with torch.no_grad():
        F = torch.fft.rfftn(x0, dim=dims, norm=norm)
    return torch.fft.rfftn(x0_hat, dim=dims, norm=norm), F


def _bin_weights(x: torch.Tensor) -> torch.Tensor:
    """Multiplicity in the full DFT of each one-sided bin of x's last axis (n): (n//2+1,), 1 at DC (and n/2 if even)."""
    n = x.shape[-1]
    w = torch.full((n // 2 + 1,), 2.0, dtype=x.dtype, device=x.device)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


def _two_sided(v: torch.Tensor, w: torch.Tensor, x: torch.Tensor, bins: str = "mean") -> torch.Tensor:
    """Sum (or mean) over channels and all two-sided bins from one-sided values: (B, C, *S_r) -> (B,)."""
    total = (v @ w).flatten(1).sum(1)  # weighted sum over the last axis in one matmul
    if bins == "sum":
        return total
    return total / x[0].numel()  # C * prod(spatial): the number of two-sided bins per sample


class _PhaseDifference(torch.autograd.Function):
    """dphi = phi(F_hat) - phi(F) with an exact forward and a softened, bounded backward.

    Why: d phi / d F = i F / |F|^2 has size 1/|F|, so in Eq. 15's |dA| |dphi| the gradient grows like
    |F x0| / |F x0_hat| when the prediction has (near-)zero bins, which is exactly what a denoiser outputs at
    high sigma (measured: grad norm ~6e6 at 1e-8 noise against ~4e-2 for Eq. 14). We keep the VALUE exact
    and replace 1/|F|^2 in the Jacobian by 1/(|F|^2 + e^2) (a Tikhonov-smoothed inverse modulus) with
        e^2 = phase_eps^2 (|F_hat|^2 + |F|^2 + s^2),   s = RMS amplitude of the sample's two spectra.
    The bin-relative part bounds the per-frequency product's phase gradient by 1/(2 phase_eps) times the
    amplitude term's (|dA| <= |F_hat| + |F|), whatever the scale; the s part bounds the global product's.
    A bin whose prediction has little energy relative to the target then moves its amplitude first and
    its (meaningless) phase hardly at all: the paper's "phase only matters where there is energy".
    For |F_hat|, |F| >> e a bin's gradient is the exact one up to a relative ~phase_eps^2, but bins with
    |F| ~ e are softened much more: over a whole random pair the gradient differs from exact autograd by 12%
    at phase_eps=0.01 (53% at 0.1); docs/spectral.md has the measurement that set the default 0.01.
    Where either spectrum is exactly 0 the phase is undefined: dphi = 0 with zero gradient. atan2(0, 0)
    never reaches autograd (custom backward), so there is no NaN hiding behind a torch.where.
    """

    @staticmethod
    def forward(ctx, xr, xi, yr, yi, s2, phase_eps: float, wrap: bool):  # noqa: D102 - see class docstring
        undefined = ((xr == 0) & (xi == 0)) | ((yr == 0) & (yi == 0))
        if wrap:
            # Angle of the cross-spectrum F_hat conj(F): the wrapped difference without any branch cut jump.
            d = torch.atan2(xi * yr - xr * yi, xr * yr + xi * yi)
        else:
            d = torch.atan2(xi, xr) - torch.atan2(yi, yr)  # raw difference in (-2 pi, 2 pi], as torch.angle
        d = torch.where(undefined, torch.zeros_like(d), d)
        ctx.save_for_backward(xr, xi, yr, yi, s2, undefined)
        ctx.phase_eps = phase_eps
        return d

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        xr, xi, yr, yi, s2, undefined = ctx.saved_tensors
        tiny = torch.finfo(g.dtype).tiny
        ax2, ay2 = xr * xr + xi * xi, yr * yr + yi * yi
        e2 = ctx.phase_eps**2 * (ax2 + ay2 + s2)  # e^2 of the class docstring
        g = torch.where(undefined, torch.zeros_like(g), g)
        gx = g / (ax2 + e2).clamp_min(tiny)
        gy = g / (ay2 + e2).clamp_min(tiny)
        return -xi * gx, xr * gx, yi * gy, -yr * gy, None, None, None


@full_precision
def amplitude_loss(
    x0_hat: torch.Tensor,
    x0: torch.Tensor,
    ndim: int = 2,
    norm: str = "ortho",
    check_finite: bool = True,
    bins: str = "mean",
) -> torch.Tensor:
    """Eq. 14: | |F x0_hat| - |F x0| | over channels and two-sided DFT bins; (B, C, *S) -> (B,).

    ``bins="sum"``: ||A_0 - A_0_hat||_1 summed over the N = C * prod(S) bins; ``"mean"``: that sum / N.
    """
    check_norm(norm)
    check_bins(bins)
    x0_hat, x0 = check_pair(x0_hat, x0, ndim, check_finite)
    F_hat, F = _rfft_pair(x0_hat, x0, ndim, norm)
    # torch.abs of a complex 0 has subgradient 0 (sgn(0) = 0), so |F| is safe at exact zeros (tested).
    dA = (F_hat.abs() - F.abs()).abs()  # Eq. 14
    return _two_sided(dA, _bin_weights(x0_hat), x0_hat, bins)


@full_precision
def amplitude_phase_loss(
    x0_hat: torch.Tensor,
    x0: torch.Tensor,
    ndim: int = 2,
    norm: str = "ortho",
    coupling: str = "per_frequency",
    wrap_phase: bool = True,
    phase_eps: float = 0.01,
    check_finite: bool = True,
    bins: str = "mean",
) -> torch.Tensor:
    """Eq. 15: |dA| (1 + |dphi|) reduced per frequency, or red|dA| (1 + red|dphi|) if global; (B, C, *S) -> (B,).

    red = ``bins`` over channels and the N = C * prod(S) two-sided bins: ``"sum"`` gives the L1 norms of Eq. 15,
    per frequency sum(|dA| (1 + |dphi|)) or global ||dA||_1 (1 + ||dphi||_1); ``"mean"`` divides each sum by N
    (per frequency: the sum / N; global: (||dA||_1 / N) (1 + ||dphi||_1 / N)).
    ``phase_eps`` softens the phase term's gradient where a bin's amplitude is small relative to the bin's
    and the sample's energy (see ``_PhaseDifference``); it never changes the value.
    """
    check_norm(norm)
    check_bins(bins)
    if coupling not in COUPLINGS:
        raise ValueError(f"unknown coupling {coupling!r}; choose one of {', '.join(COUPLINGS)}")
    if not phase_eps > 0:
        raise ValueError(f"phase_eps must be > 0, got {phase_eps!r}")
    x0_hat, x0 = check_pair(x0_hat, x0, ndim, check_finite)
    F_hat, F = _rfft_pair(x0_hat, x0, ndim, norm)
    A_hat, A = F_hat.abs(), F.abs()
    w = _bin_weights(x0_hat)
    with torch.no_grad():  # s^2: a scale, not a path for gradients
        s2 = 0.5 * (_two_sided(A_hat * A_hat, w, x0_hat) + _two_sided(A * A, w, x0_hat))  # mean power, any bins
        s2 = s2.view(-1, *([1] * (A.dim() - 1)))  # (B,) -> (B, 1, ..., 1)
    dA = (A_hat - A).abs()
    dphi = _PhaseDifference.apply(F_hat.real, F_hat.imag, F.real, F.imag, s2, phase_eps, wrap_phase).abs()
    if coupling == "per_frequency":
        return _two_sided(dA * (1 + dphi), w, x0_hat, bins)  # Eq. 15, coupled bin by bin
    return _two_sided(dA, w, x0_hat, bins) * (1 + _two_sided(dphi, w, x0_hat, bins))  # Eq. 15, literal
