"""The image study's metrics against closed forms and independent oracles (scipy, numpy brute force)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.ndimage
import torch

from specreg_lib.errors import InputError
from specreg_lib.metrics import (
    RandomConvFeatures,
    feature_distance,
    hf_power_ratio,
    laplacian_energy,
    laplacian_energy_ratio,
    nearest_neighbour_copies,
    noise_floor,
)
from specreg_lib.metrics.image_quality import ImageMetricInputError


def power_law_images(n: int, size: int = 16, seed: int = 0, channels: int = 3) -> torch.Tensor:
    """Gaussian fields with power ~ f^-2 (amplitude 1/f), std 0.3, clipped to [-1, 1]: (n, C, size, size) float64."""
    rng = np.random.default_rng(seed)
    f = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2)
    f[0, 0] = 1.0 / size
    x = np.fft.ifft2(np.fft.fft2(rng.standard_normal((n, channels, size, size))) / f).real
    x = 0.3 * x / x.std(axis=(-2, -1), keepdims=True)
    return torch.from_numpy(np.clip(x, -1, 1))


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.from_numpy(scipy.ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="reflect"))


def grating(size: int, ky: int, kx: int, amplitude: float) -> torch.Tensor:
    """amplitude * cos(2 pi (ky y + kx x) / size), periodic, as (1, 1, size, size) float64."""
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return torch.from_numpy(amplitude * np.cos(2 * np.pi * (ky * y + kx * x) / size))[None, None]


# --- hf_power_ratio -------------------------------------------------------------------------------------------------

def test_hf_power_ratio_gratings_closed_form():
    # A grating of amplitude a puts a^2 HW / 4 into two FFT bins on one radius: at the same radius the ratio is
    # (a / b)^2 whatever the direction; a grating below the cutoff adds nothing.
    n = 32
    reference = grating(n, 0, 12, 0.4)  # f = 12/32 = 0.375, horizontal
    samples = grating(n, 12, 0, 0.8) + grating(n, 0, 2, 0.15)  # same radius, vertical, + f = 1/16 (below cutoff)
    assert hf_power_ratio(samples, reference, cutoff=0.25, window=None) == pytest.approx(4.0, rel=1e-9)
    # Move the low grating above the cutoff: its bin enters the band and the ratio changes as the bins predict.
    samples_high = grating(n, 12, 0, 0.8) + grating(n, 0, 10, 0.15)  # f = 10/32 = 0.3125
    assert hf_power_ratio(samples_high, reference, cutoff=0.25, window=None) > 4.0


@pytest.mark.parametrize("window", [None, "hann"])
def test_hf_power_ratio_white_noise_is_variance_ratio(window):
    g = torch.Generator().manual_seed(0)
    a = 0.2 * torch.randn(128, 3, 32, 32, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(128, 3, 32, 32, generator=g, dtype=torch.float64)
    # expected power s^2 in every bin (the Hann taper has mean square 1); the taper leaves fewer independent
    # values, so the sampling spread is wider with it (seeds 0-5: within 3.5%)
    assert hf_power_ratio(a, b, window=window) == pytest.approx(4.0, rel=0.05)
    assert hf_power_ratio(a, 0.5 * a, window=window) == pytest.approx(4.0, rel=1e-12)


def test_hf_power_ratio_sees_blur():
    x = power_law_images(32, 32)
    assert hf_power_ratio(blur(x, 1.0), x) < 0.1 < hf_power_ratio(blur(x, 0.5), x) < 1.0


# --- laplacian_energy_ratio -----------------------------------------------------------------------------------------

def test_laplacian_energy_matches_scipy_reflect():
    x = power_law_images(3, 12, seed=1)
    ours = laplacian_energy(x).numpy()
    planes = x.numpy()
    oracle = np.array([np.mean([scipy.ndimage.laplace(planes[b, c], mode="reflect") ** 2
                                for c in range(planes.shape[1])]) for b in range(planes.shape[0])])
    np.testing.assert_allclose(ours, oracle, rtol=1e-12)


def test_laplacian_energy_ratio_white_noise_and_blur():
    g = torch.Generator().manual_seed(1)
    a = 0.9 * (2 * torch.rand(16, 3, 32, 32, generator=g, dtype=torch.float64) - 1)  # uniform, s^2 = 0.81 / 3
    # interior: E[(L x)^2] = (4 + 16) s^2 = 20 s^2; the border pixels lose a little (replicated neighbours)
    assert laplacian_energy(a).mean().item() == pytest.approx(20 * 0.27, rel=0.1)
    assert laplacian_energy_ratio(a, 0.5 * a) == pytest.approx(4.0, rel=1e-12)
    x = power_law_images(16, 32)
    assert laplacian_energy_ratio(blur(x, 1.0), x) < laplacian_energy_ratio(blur(x, 0.5), x) < 1.0


# --- feature_distance -----------------------------------------------------------------------------------------------

def test_feature_distance_floor_and_blur_monotone():
    torch.set_num_threads(2)
    x1, x2 = power_law_images(400, 16, seed=2), power_law_images(400, 16, seed=3)
    assert feature_distance(x1, x1) == pytest.approx(0.0, abs=1e-9)
    same = feature_distance(x1, x2)
    blurred = [feature_distance(blur(x1, s), x2) for s in (0.5, 1.0, 1.5, 2.0)]
    assert all(a < b for a, b in zip(blurred, blurred[1:], strict=False)), blurred
    # measured: same 0.0089; blur 0.5 / 1 / 1.5 / 2 px: 0.023, 0.090, 0.15, 0.22
    assert same < 0.5 * blurred[0] and same < 0.2 * blurred[1], (same, blurred)


def test_random_conv_features_are_fixed_and_picklable():
    x = power_law_images(4, 16)
    f = RandomConvFeatures()
    again = pickle.loads(pickle.dumps(f))
    assert f.dim == 92 and f(x).shape == (4, 92)
    torch.testing.assert_close(f(x), again(x), rtol=0, atol=0)
    torch.testing.assert_close(f(x), RandomConvFeatures()(x), rtol=0, atol=0)  # the seed fixes the space
    assert not torch.equal(f(x), RandomConvFeatures(seed=1)(x))


# --- nearest_neighbour_copies ---------------------------------------------------------------------------------------

def brute_force_ratios(samples: np.ndarray, train: np.ndarray) -> np.ndarray:
    s, t = samples.reshape(len(samples), -1), train.reshape(len(train), -1)
    d = np.sqrt(((s[:, None] - t[None]) ** 2).sum(-1))
    nearest = d.argmin(1)
    dt = np.sqrt(((t[:, None] - t[None]) ** 2).sum(-1))
    np.fill_diagonal(dt, np.inf)
    return d.min(1) / dt[nearest].min(1)


def test_copy_check_finds_planted_copy_and_matches_brute_force():
    train = power_law_images(50, 8, seed=4)
    samples = power_law_images(20, 8, seed=5)
    samples[7] = train[31]  # planted exact copy
    result = nearest_neighbour_copies(samples, train, threshold=0.5, chunk=7)  # chunks smaller than both sets
    assert result.nearest[7] == 31 and result.ratios[7] < 1e-6
    np.testing.assert_allclose(result.ratios, brute_force_ratios(samples.numpy(), train.numpy()), rtol=1e-9,
                               atol=1e-6)
    assert result.share_below == pytest.approx(1 / 20)  # only the copy


def test_copy_check_does_not_flag_fresh_samples():
    train = power_law_images(200, 8, seed=6)
    result = nearest_neighbour_copies(power_law_images(64, 8, seed=7), train)
    assert result.share_below == 0.0 and 0.6 < float(np.median(result.ratios)) < 1.6


def test_copy_check_skips_duplicates_in_train():
    train = power_law_images(10, 8, seed=8)
    train[3] = train[4]  # a duplicated training patch: its own neighbour is the next distinct one, not 0
    result = nearest_neighbour_copies(train[3:4].clone(), train)
    assert np.isfinite(result.ratios).all() and result.ratios[0] < 1e-6


# --- noise_floor ----------------------------------------------------------------------------------------------------

def test_noise_floor_identical_halves_is_perfect():
    x = power_law_images(16, 16)
    assert noise_floor(hf_power_ratio, x, x.clone()) == 1.0
    assert noise_floor(laplacian_energy_ratio, x, x.clone(), count=5) == 1.0


def test_noise_floor_halves_are_disjoint_and_sized():
    x = power_law_images(21, 8)
    seen = []

    def record(a, b):
        seen.append((a, b))
        return 0.0

    noise_floor(record, x, count=4, seed=3)
    a, b = seen[0]
    assert a.shape[0] == b.shape[0] == 4
    rows = {tuple(r.flatten().tolist()) for r in a}
    assert not any(tuple(r.flatten().tolist()) in rows for r in b)
    # held-out halves of one distribution: near the perfect value, not at it
    floor = noise_floor(hf_power_ratio, power_law_images(64, 16, seed=9))
    assert floor != 1.0 and abs(floor - 1) < 0.15


# --- bad inputs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 3, 8, 8)), "torch.Tensor"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "dtype"),
    (torch.zeros(3, 8, 8), "shape"),
    (torch.full((2, 3, 8, 8), 2.0), "outside \\[-1, 1\\]"),
    (torch.full((2, 3, 8, 8), float("nan")), "NaN"),
])
def test_bad_inputs_are_input_errors(bad, match):
    good = torch.zeros(2, 3, 8, 8)
    with pytest.raises(ImageMetricInputError, match=match):
        laplacian_energy_ratio(bad, good)
    assert issubclass(ImageMetricInputError, InputError) and issubclass(ImageMetricInputError, ValueError)


def test_mismatches_and_options_are_input_errors():
    x = power_law_images(4, 16)
    with pytest.raises(ImageMetricInputError, match="crop both sets"):
        hf_power_ratio(x, x[..., :8, :8])
    with pytest.raises(ImageMetricInputError, match="cutoff"):
        hf_power_ratio(x, x, cutoff=0.6)
    with pytest.raises(ImageMetricInputError, match="constant"):
        laplacian_energy_ratio(x, torch.zeros_like(x))
    with pytest.raises(ImageMetricInputError, match="count"):
        noise_floor(hf_power_ratio, x, count=3)  # halves of 2
    with pytest.raises(ImageMetricInputError, match="identical"):
        nearest_neighbour_copies(x[:1], x[:1].expand(3, -1, -1, -1).clone())
