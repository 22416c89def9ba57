"""SpectralLoss and the shared input contract: shapes, dtypes, devices, pickling, every bad input."""

import math
import pickle

import pytest
import torch

from specreg_lib.spectral import SpectralLoss, amplitude_loss, amplitude_phase_loss, wavelet_loss

LOSSES = [amplitude_loss, amplitude_phase_loss, wavelet_loss]


@pytest.mark.parametrize("kind,options", [("amp", {}), ("amp_phase", {"coupling": "global"}),
                                          ("wavelet", {"wave": "bior1.3", "levels": 2})])
def test_spectral_loss_pickles_and_matches_function(kind, options):
    loss = SpectralLoss(kind, **options)
    clone = pickle.loads(pickle.dumps(loss))
    assert clone == loss and repr(clone) == repr(loss)
    a, b = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)
    out = clone(a, b)
    assert out.shape == (3,) and out.dtype == torch.float32 and out.device == a.device
    fn = {"amp": amplitude_loss, "amp_phase": amplitude_phase_loss, "wavelet": wavelet_loss}[kind]
    torch.testing.assert_close(out, fn(a, b, **options))


def test_audio_shapes():
    a, b = torch.randn(2, 1, 4000), torch.randn(2, 1, 4000)
    for kind in ("amp", "amp_phase", "wavelet"):
        assert SpectralLoss(kind, ndim=1)(a, b).shape == (2,)


def test_spectral_loss_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown spectral loss kind"):
        SpectralLoss("focal")
    with pytest.raises(TypeError, match="unknown option"):
        SpectralLoss("amp", wave="haar")
    with pytest.raises(ValueError, match="unknown discrete wavelet"):
        SpectralLoss("wavelet", wave="haarr")
    with pytest.raises(ValueError, match="unknown FFT norm"):
        SpectralLoss("amp", norm="unitary")
    with pytest.raises(ValueError, match="unknown coupling"):
        SpectralLoss("amp_phase", coupling="both")


@pytest.mark.parametrize("loss", LOSSES)
def test_bad_inputs_raise_clear_errors(loss):
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="shape mismatch"):
        loss(x, x[:, :2])
    with pytest.raises(ValueError, match="ndim=2 needs at least 4 axes"):
        loss(x[0], x[0])
    with pytest.raises(TypeError, match="dtype torch.int64"):
        loss(x.long(), x.long())
    with pytest.raises(TypeError, match="complex"):
        loss(x.to(torch.complex64), x.to(torch.complex64))
    for bad in (math.nan, math.inf):
        y = x.clone()
        y[1, 2, 3, 4] = bad
        with pytest.raises(ValueError, match="x0 contains NaN or Inf"):
            loss(x, y)
        with pytest.raises(ValueError, match="x0_hat contains NaN or Inf"):
            loss(y, x)
        assert not torch.isfinite(loss(y, x, check_finite=False)).all()  # opt-out: NaN propagates
    with pytest.raises(TypeError, match="torch.Tensor"):
        loss(x.numpy(), x)


def test_fourier_specific_errors():
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="ndim must be a positive int"):
        amplitude_loss(x, x, ndim=0)
    with pytest.raises(ValueError, match="ndim=3 needs at least 5 axes"):
        amplitude_loss(x, x, ndim=3)
    with pytest.raises(ValueError, match="phase_eps"):
        amplitude_phase_loss(x, x, phase_eps=0.0)
