"""Eq. 16 and its DWT: coefficients against PyWavelets, the loss against an explicit pywt computation."""

import numpy as np
import pytest
import pywt
import torch

from specreg_lib.spectral import wavedec, wavelet_loss

CASES = [("haar", "zero"), ("bior1.3", "zero"), ("haar", "periodic"), ("bior1.3", "symmetric"),
         ("bior1.3", "reflect"), ("db2", "periodic")]


@pytest.mark.parametrize("wave,mode", CASES)
@pytest.mark.parametrize("shape", [(2, 3, 40, 40), (1, 2, 41, 46)])
def test_2d_coefficients_match_pywavelets(wave, mode, shape):
    x = np.random.default_rng(0).standard_normal(shape)
    ref = pywt.wavedec2(x, wave, mode=mode, level=2, axes=(-2, -1))
    got = wavedec(torch.from_numpy(x), wave, levels=2, ndim=2, mode=mode)
    np.testing.assert_allclose(got[0].numpy(), ref[0], rtol=0, atol=1e-12)
    for g, r in zip(got[1:], ref[1:]):
        np.testing.assert_allclose(g.numpy(), np.stack(r, axis=2), rtol=0, atol=1e-12)  # (cH, cV, cD)


@pytest.mark.parametrize("wave,mode", CASES)
def test_1d_coefficients_match_pywavelets(wave, mode):
    x = np.random.default_rng(1).standard_normal((2, 1, 101))
    ref = pywt.wavedec(x, wave, mode=mode, level=3)
    got = wavedec(torch.from_numpy(x), wave, levels=3, ndim=1, mode=mode)
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g.numpy(), r, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ndim,shape", [(2, (3, 2, 32, 32)), (1, (3, 1, 256))])
@pytest.mark.parametrize("wave", ["haar", "bior1.3"])
def test_loss_equals_explicit_pywt_sum(ndim, shape, wave):
    g = np.random.default_rng(2)
    a, b = g.standard_normal(shape), g.standard_normal(shape)
    levels = 2
    dec = (lambda v: pywt.wavedec2(v, wave, mode="zero", level=levels)) if ndim == 2 else (
        lambda v: pywt.wavedec(v, wave, mode="zero", level=levels))
    gamma = [0.5, 2.0, 1.0] if ndim == 2 else [0.5, 2.0, 1.0]  # per scale: approx, level 2, level 1
    expected = np.zeros(shape[0])
    for i in range(shape[0]):
        ca, cb = dec(a[i]), dec(b[i])
        expected[i] = gamma[0] * np.abs(ca[0] - cb[0]).mean()
        for s in range(1, levels + 1):
            bands = zip(ca[s], cb[s]) if ndim == 2 else [(ca[s], cb[s])]
            expected[i] += sum(gamma[s] * np.abs(p - q).mean() for p, q in bands)
    got = wavelet_loss(torch.from_numpy(a), torch.from_numpy(b), wave, levels, ndim, gamma=gamma)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_per_band_gamma_and_uniform_default():
    a, b = torch.randn(2, 3, 16, 16, dtype=torch.float64), torch.randn(2, 3, 16, 16, dtype=torch.float64)
    base = wavelet_loss(a, b, levels=2)
    torch.testing.assert_close(wavelet_loss(a, b, levels=2, gamma=[1.0] * 7), base)
    torch.testing.assert_close(wavelet_loss(a, b, levels=2, gamma=[2.0] * 3), 2 * base)
    only_approx = wavelet_loss(a, b, levels=2, gamma=[1.0] + [0.0] * 6)
    cA = wavedec(a - b, "haar", 2)[0]
    torch.testing.assert_close(only_approx, cA.abs().flatten(1).mean(1))
    with pytest.raises(ValueError, match="gamma needs"):
        wavelet_loss(a, b, levels=2, gamma=[1.0, 1.0])


def test_zero_symmetry_scaling_and_dtype():
    a, b = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    assert torch.equal(wavelet_loss(a, a), torch.zeros(4))
    torch.testing.assert_close(wavelet_loss(a, b), wavelet_loss(b, a))
    torch.testing.assert_close(wavelet_loss(2 * a, 2 * b), 2 * wavelet_loss(a, b))
    out = wavelet_loss(a.half(), b.half(), "bior1.3", levels=2)
    assert out.shape == (4,) and out.dtype == torch.float32


@pytest.mark.parametrize("ndim,shape", [(2, (2, 2, 10, 10)), (1, (2, 1, 16))])
def test_gradcheck_float64(ndim, shape):
    a = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    b = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: wavelet_loss(x, y, "haar", 1, ndim), (a, b))
    assert torch.autograd.gradcheck(lambda x, y: wavelet_loss(x, y, "bior1.3", 1, ndim, mode="symmetric"), (a, b))


def test_bad_wavelet_arguments():
    x = torch.randn(1, 1, 32, 32)
    with pytest.raises(ValueError, match="mode='reflect' reaches a length-1 signal"):  # as pywt refuses
        wavelet_loss(x, x, "haar", levels=6, mode="reflect")
    with pytest.raises(ValueError, match="unknown discrete wavelet"):
        wavelet_loss(x, x, "nope")
    with pytest.raises(ValueError, match="unknown discrete wavelet"):
        wavelet_loss(x, x, "morl")  # continuous only
    with pytest.raises(ValueError, match="unknown mode"):
        wavelet_loss(x, x, mode="smooth")
    with pytest.raises(ValueError, match="ndim=1"):
        wavelet_loss(torch.randn(1, 1, 8, 8, 8), torch.randn(1, 1, 8, 8, 8), levels=1, ndim=3)
    with pytest.raises(ValueError, match="levels"):
        wavelet_loss(x, x, levels=0)


@pytest.mark.parametrize("wave,levels,mode", [("bior1.3", 3, "zero"), ("haar", 6, "zero"), ("db2", 5, "reflect")])
def test_levels_deeper_than_dwt_max_level_follow_pywavelets(wave, levels, mode):
    """PyWavelets allows levels > dwt_max_level with a warning (CIFAR-10 32x32, bior1.3, J=3): so do we."""
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with pytest.warns(UserWarning, match="deeper than pywt.dwt_max_level"):
        ours = wavedec(x, wave, levels, 2, mode)
    with pytest.warns(UserWarning, match="too high"):
        ref = pywt.wavedec2(x.numpy(), wave, mode=mode, level=levels, axes=(-2, -1))
    assert np.allclose(ours[0].numpy(), ref[0], atol=1e-12)
    for j in range(1, levels + 1):
        assert np.allclose(ours[j].numpy(), np.stack(ref[j], -3), atol=1e-12)
