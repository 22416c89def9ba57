"""Radial power spectra: white noise is flat, a power-law field gives back its slope; distances."""

import numpy as np
import pytest
import torch

from specreg_lib.metrics import (
    fit_power_law_slope,
    high_frequency_energy_ratio,
    radial_power_spectrum,
    spectral_log_distance,
)


def _power_law_field(n: int, alpha: float, batch: int, seed: int) -> torch.Tensor:
    """Gaussian random field with power spectrum ~ f^-alpha: (batch, 1, n, n)."""
    g = torch.Generator().manual_seed(seed)
    f = torch.sqrt(torch.fft.fftfreq(n)[:, None] ** 2 + torch.fft.rfftfreq(n)[None, :] ** 2)
    f[0, 0] = 1.0
    spec = torch.fft.rfft2(torch.randn(batch, 1, n, n, generator=g, dtype=torch.float64)) * f ** (-alpha / 2)
    return torch.fft.irfft2(spec, s=(n, n))


def test_white_noise_is_flat_at_its_variance():
    x = 0.5 * torch.randn(16, 3, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    freqs, power = radial_power_spectrum(x)
    assert freqs.shape == (33,) and power.shape == (16, 33)
    assert freqs[1].item() == pytest.approx(1 / 64) and freqs[-1].item() == pytest.approx(0.5)
    p = power.mean(0)[1:]
    np.testing.assert_allclose(p.numpy(), 0.25, rtol=0.15)
    assert abs(fit_power_law_slope(freqs, power)) < 0.1


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_power_law_slope_recovered(alpha):
    x = _power_law_field(128, alpha, batch=8, seed=int(alpha))
    freqs, power = radial_power_spectrum(x)
    assert fit_power_law_slope(freqs, power, fmin=2 / 128, fmax=0.5) == pytest.approx(-alpha, abs=0.1)


def test_audio_spectrum_is_rfft_periodogram():
    x = torch.randn(4, 2, 1000, dtype=torch.float64)
    freqs, power = radial_power_spectrum(x, kind="audio")
    torch.testing.assert_close(freqs, torch.fft.rfftfreq(1000, dtype=torch.float64))
    torch.testing.assert_close(power, torch.fft.rfft(x).abs().square().mean(1) / 1000)
    t = torch.arange(1000, dtype=torch.float64)
    _, tone = radial_power_spectrum(torch.sin(2 * torch.pi * 0.1 * t).view(1, 1, -1), kind="audio")
    assert tone[0].argmax().item() == 100


def test_distances():
    f = np.linspace(0, 0.5, 11)
    a = np.ones(11)
    assert spectral_log_distance(a, a) == 0.0
    assert spectral_log_distance(a, 10 * a) == pytest.approx(1.0)
    assert spectral_log_distance(np.stack([a, a]), 100 * a) == pytest.approx(2.0)
    b = np.where(f >= 0.25, 0.5, 1.0)
    assert high_frequency_energy_ratio(f, b, a) == pytest.approx(0.5)
    assert high_frequency_energy_ratio(f, a, a, cutoff=0.4) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="cutoff"):
        high_frequency_energy_ratio(f, a, a, cutoff=0.9)
    with pytest.raises(ValueError, match="differ in length"):
        spectral_log_distance(a, a[:5])
    with pytest.raises(ValueError, match="B, C, H, W"):
        radial_power_spectrum(torch.randn(8, 8))
