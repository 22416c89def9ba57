"""``bins``: every spectral loss summed (the L1 norms of Eqs. 14-16) or averaged over its bins / coefficients.

Oracles are the equations written out with numpy.fft (two-sided, full DFT) and pywt.wavedec / wavedec2.
"""

import numpy as np
import pytest
import pywt
import torch

from specreg_lib.spectral import SpectralLoss, amplitude_loss, amplitude_phase_loss, wavelet_loss

SHAPES = [((2, 3, 15, 9), 2), ((3, 1, 16, 16), 2), ((2, 2, 101), 1), ((2, 1, 64), 1)]


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64))


def _spectra(x0_hat, x0, ndim, norm):
    axes = tuple(range(-ndim, 0))
    F = lambda x: np.fft.fftn(x.numpy(), axes=axes, norm=norm)  # noqa: E731 - two-sided DFT of every channel
    return F(x0_hat), F(x0)


def _flat(a):
    return a.reshape(a.shape[0], -1)  # (B, C, *S) -> (B, N), N = C * prod(S) bins


@pytest.mark.parametrize("shape,ndim", SHAPES)
@pytest.mark.parametrize("norm", ["ortho", "backward"])
def test_amplitude_sum_is_the_l1_norm_of_eq14(shape, ndim, norm):
    x0_hat, x0 = _pair(shape)
    F_hat, F = _spectra(x0_hat, x0, ndim, norm)
    l1 = _flat(np.abs(np.abs(F_hat) - np.abs(F))).sum(1)  # Eq. 14: ||A_0 - A_0_hat||_1 over all bins and channels
    n = int(np.prod(shape[1:]))
    total = amplitude_loss(x0_hat, x0, ndim=ndim, norm=norm, bins="sum")
    np.testing.assert_allclose(total.numpy(), l1, rtol=1e-10)
    np.testing.assert_allclose(amplitude_loss(x0_hat, x0, ndim=ndim, norm=norm, bins="mean").numpy(), l1 / n,
                               rtol=1e-10)


@pytest.mark.parametrize("shape,ndim", SHAPES)
@pytest.mark.parametrize("wrap", [True, False])
def test_amplitude_phase_sum_is_eq15_for_both_couplings(shape, ndim, wrap):
    x0_hat, x0 = _pair(shape, seed=1)
    F_hat, F = _spectra(x0_hat, x0, ndim, "ortho")
    dA = _flat(np.abs(np.abs(F_hat) - np.abs(F)))
    raw = np.angle(F_hat) - np.angle(F)  # in (-2 pi, 2 pi]
    dphi = _flat(np.abs(np.angle(np.exp(1j * raw)) if wrap else raw))
    n = dA.shape[1]
    opts = {"ndim": ndim, "wrap_phase": wrap}
    # per frequency: sum_w |dA| (1 + |dphi|); mean = that / N
    per = (dA * (1 + dphi)).sum(1)
    for bins, want in (("sum", per), ("mean", per / n)):
        got = amplitude_phase_loss(x0_hat, x0, coupling="per_frequency", bins=bins, **opts)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    # global, Eq. 15 literally: ||dA||_1 (1 + ||dphi||_1); mean replaces each norm by its mean over the N bins
    sA, sphi = dA.sum(1), dphi.sum(1)
    for bins, want in (("sum", sA * (1 + sphi)), ("mean", sA / n * (1 + sphi / n))):
        got = amplitude_phase_loss(x0_hat, x0, coupling="global", bins=bins, **opts)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


WAVELET_CASES = [((2, 3, 33, 21), 2, "haar", 2), ((2, 2, 33, 21), 2, "bior1.3", 2), ((1, 1, 16, 16), 2, "haar", 3),
                 ((2, 2, 101), 1, "haar", 4), ((2, 3, 101), 1, "bior1.3", 3)]


def _pywt_bands(d: np.ndarray, wave: str, levels: int, ndim: int, mode: str) -> list[np.ndarray]:
    """Sub-bands of d (B, C, *S) in wavedec order [cA_J, d_J bands..., d_1 bands], each (B, C, *band)."""
    if ndim == 1:
        return pywt.wavedec(d, wave, mode=mode, level=levels, axis=-1)
    cA, *details = pywt.wavedec2(d, wave, mode=mode, level=levels, axes=(-2, -1))
    return [cA] + [band for level in details for band in level]  # (cH, cV, cD) per level


@pytest.mark.parametrize("shape,ndim,wave,levels", WAVELET_CASES)
@pytest.mark.parametrize("mode", ["zero", "symmetric"])
def test_wavelet_sum_is_the_gamma_weighted_l1_of_eq16(shape, ndim, wave, levels, mode):
    x0_hat, x0 = _pair(shape, seed=2)
    bands = _pywt_bands((x0_hat - x0).numpy(), wave, levels, ndim, mode)
    rng = np.random.default_rng(0)
    gamma = list(rng.uniform(0.5, 2.0, len(bands)))  # one weight per band
    l1 = sum(g * _flat(np.abs(b)).sum(1) for g, b in zip(gamma, bands, strict=True))  # Eq. 16
    mean = sum(g * _flat(np.abs(b)).mean(1) for g, b in zip(gamma, bands, strict=True))  # each band / its C x size
    opts = {"wave": wave, "levels": levels, "ndim": ndim, "mode": mode, "gamma": gamma}
    np.testing.assert_allclose(wavelet_loss(x0_hat, x0, bins="sum", **opts).numpy(), l1, rtol=1e-10)
    np.testing.assert_allclose(wavelet_loss(x0_hat, x0, bins="mean", **opts).numpy(), mean, rtol=1e-10)
    # uniform weights (gamma=None): the plain ||W_0 - W_0_hat||_1 of App. B.4, Eq. 24
    plain = sum(_flat(np.abs(b)).sum(1) for b in bands)
    np.testing.assert_allclose(wavelet_loss(x0_hat, x0, bins="sum", **{**opts, "gamma": None}).numpy(), plain,
                               rtol=1e-10)


@pytest.mark.parametrize("kind,options", [("amp", {}), ("amp_phase", {"coupling": "global"}),
                                          ("wavelet", {"wave": "bior1.3", "levels": 2})])
def test_mean_is_the_default_and_bins_travels_through_spectral_loss(kind, options):
    a, b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    default = SpectralLoss(kind, **options)(a, b)
    assert torch.equal(default, SpectralLoss(kind, bins="mean", **options)(a, b))
    fn = {"amp": amplitude_loss, "amp_phase": amplitude_phase_loss, "wavelet": wavelet_loss}[kind]
    assert torch.equal(SpectralLoss(kind, bins="sum", **options)(a, b), fn(a, b, bins="sum", **options))


def test_summed_gradient_is_n_times_the_mean_gradient():
    x0 = torch.randn(2, 3, 15, 9, dtype=torch.float64)
    x0_hat = torch.randn(2, 3, 15, 9, dtype=torch.float64, requires_grad=True)
    (g_sum,) = torch.autograd.grad(amplitude_loss(x0_hat, x0, bins="sum").sum(), x0_hat)
    (g_mean,) = torch.autograd.grad(amplitude_loss(x0_hat, x0, bins="mean").sum(), x0_hat)
    torch.testing.assert_close(g_sum, g_mean * (3 * 15 * 9), rtol=1e-10, atol=0)
    assert torch.autograd.gradcheck(lambda y: wavelet_loss(y, x0, wave="haar", levels=2, bins="sum"), (x0_hat,))


@pytest.mark.parametrize("kind", ["amp", "amp_phase", "wavelet"])
def test_bad_bins_is_a_clear_error(kind):
    with pytest.raises(ValueError, match="unknown bins reduction 'pixels'; choose one of mean, sum"):
        SpectralLoss(kind, bins="pixels")
    fn = {"amp": amplitude_loss, "amp_phase": amplitude_phase_loss, "wavelet": wavelet_loss}[kind]
    x = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match="unknown bins reduction"):
        fn(x, x, bins="total")
