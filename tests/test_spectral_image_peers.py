"""The image peer kinds against independent oracles: focal_freq against the PyPI package called directly,
dct_multiscale and facl against their formulas written out in numpy / scipy, pixel_l1 against closed forms."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import scipy.fft
import torch
from focal_frequency_loss import FocalFrequencyLoss

from specreg_lib.diffusion import EDMLoss, Regularizer
from specreg_lib.errors import InputError
from specreg_lib.spectral import (
    KINDS,
    SpectralLoss,
    dct_frequency_weights,
    dct_multiscale_loss,
    facl_loss,
    focal_frequency_loss,
    pixel_l1_loss,
)

IMAGE_KINDS = ("pixel_l1", "dct_multiscale", "focal_freq", "facl")


def _pair(shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype), \
        torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def test_the_kinds_are_registered_and_exported():
    assert [KINDS[k] for k in IMAGE_KINDS] == [pixel_l1_loss, dct_multiscale_loss, focal_frequency_loss, facl_loss]


# --- oracles ---------------------------------------------------------------------------------------------------

def test_pixel_l1_closed_forms_and_audio_shapes():
    x0, _ = _pair((3, 2, 8, 6))
    offset = torch.tensor([0.5, -2.0, 0.0], dtype=torch.float64)[:, None, None, None]
    torch.testing.assert_close(pixel_l1_loss(x0 + offset, x0), torch.tensor([0.5, 2.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(pixel_l1_loss(x0 + offset, x0, bins="sum"), 96 * offset.abs().flatten())
    a, b = _pair((2, 1, 100))  # audio, the same control: ndim=1
    np.testing.assert_allclose(pixel_l1_loss(a, b, ndim=1).numpy(), np.abs((a - b).numpy()).reshape(2, -1).mean(1),
                               rtol=1e-14)


def _kdiffusion_weights(h: int, w: int, scales: int) -> np.ndarray:
    """k-diffusion's freq_weight_nd written out: -log2 of linspace(0.5/n, 0.5, n), clamped, min over the axes."""
    def axis(n):
        v = -np.log2(np.linspace(0.5 / n, 0.5, n))
        return np.minimum(v, scales) if scales >= 1 else v
    return np.minimum(axis(h)[:, None], axis(w)[None, :])


@pytest.mark.parametrize("shape", [(3, 3, 32, 32), (2, 1, 8, 12), (2, 2, 5, 7)])
@pytest.mark.parametrize("scales", [0, 1, 2, 4])
def test_dct_multiscale_against_scipy_dctn(shape, scales):
    a, b = _pair(shape)
    D = scipy.fft.dctn((a - b).numpy(), type=2, norm="ortho", axes=(-2, -1))
    v = (_kdiffusion_weights(*shape[-2:], scales) * D**2).reshape(shape[0], -1)
    np.testing.assert_allclose(dct_multiscale_loss(a, b, scales=scales).numpy(), v.mean(1), rtol=1e-12)
    np.testing.assert_allclose(dct_multiscale_loss(a, b, scales=scales, bins="sum").numpy(), v.sum(1), rtol=1e-12)
    np.testing.assert_allclose(dct_frequency_weights(*shape[-2:], scales, torch.float64).numpy(),
                               _kdiffusion_weights(*shape[-2:], scales), rtol=1e-14)
    f32 = dct_multiscale_loss(a.float(), b.float(), scales=scales)
    assert f32.dtype == torch.float32
    np.testing.assert_allclose(f32.numpy(), v.mean(1), rtol=1e-5)


def test_dct_multiscale_with_one_scale_is_the_pixel_mse_and_weighs_low_frequencies_up():
    a, b = _pair((2, 3, 16, 16))
    torch.testing.assert_close(dct_multiscale_loss(a, b, scales=1), ((a - b) ** 2).flatten(1).mean(1))
    # one DCT basis image as the error: the loss ("sum") is its bin's weight; highest bin 1, DC log2(2n), clamped
    zero = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    for (k, l), scales, weight in (((15, 15), 0, 1.0), ((0, 0), 0, 5.0), ((0, 0), 3, 3.0), ((3, 7), 0, 2.0),
                                   ((3, 1), 0, 3.0), ((3, 1), 8, 3.0), ((3, 1), 2, 2.0)):
        delta = np.zeros((16, 16))
        delta[k, l] = 1.0
        basis = torch.from_numpy(scipy.fft.idctn(delta, type=2, norm="ortho"))[None, None]
        torch.testing.assert_close(dct_multiscale_loss(basis, zero, scales=scales, bins="sum"),
                                   torch.full((1,), weight, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [{}, {"alpha": 0.5}, {"alpha": 2.0, "patch_factor": 2},
                                     {"patch_factor": 4, "log_matrix": True}, {"alpha": 0.0}])
def test_focal_freq_is_the_package_one_sample_at_a_time(dtype, options):
    a, b = _pair((3, 3, 16, 16), dtype)
    b[2] = a[2]  # an exact match: the package's 0/0 weights become 0 as ours
    ours = focal_frequency_loss(a, b, **options)
    package = FocalFrequencyLoss(**options)
    expect = torch.stack([package(a[i: i + 1], b[i: i + 1]) for i in range(3)]).to(dtype)
    torch.testing.assert_close(ours, expect, rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=0)
    # the package's batch value is the mean of ours (its weight normalisation is per sample, patch and channel)
    torch.testing.assert_close(ours.mean(), package(a, b).to(dtype), rtol=1e-5 if dtype == torch.float32 else 1e-12,
                               atol=0)
    # and so is its gradient: the weight matrix is a constant for the gradient in both
    a1, a2 = a.clone().requires_grad_(), a.clone().requires_grad_()
    focal_frequency_loss(a1, b, **options).mean().backward()
    package(a2, b).backward()
    torch.testing.assert_close(a1.grad, a2.grad, rtol=1e-4 if dtype == torch.float32 else 1e-10, atol=1e-12)


def _numpy_facl(a: np.ndarray, b: np.ndarray, p_fal: float) -> tuple[np.ndarray, np.ndarray]:
    """FAL and FCL of Yan et al. per sample, on the orthonormal two-sided 2-D DFT: (B, C, H, W) -> 2 x (B,)."""
    Fa, Fb = np.fft.fft2(a, norm="ortho"), np.fft.fft2(b, norm="ortho")
    fal = ((np.abs(Fa) - np.abs(Fb)) ** 2).reshape(len(a), -1)
    corr = (np.conj(Fa) * Fb).reshape(len(a), -1).sum(1).real
    norms = np.sqrt((np.abs(Fa) ** 2).reshape(len(a), -1).sum(1) * (np.abs(Fb) ** 2).reshape(len(a), -1).sum(1))
    return fal, 1 - corr / norms


@pytest.mark.parametrize("p_fal", [0.0, 0.3, 0.5, 1.0])
def test_facl_against_the_dft_formula_in_numpy(p_fal):
    a, b = _pair((3, 3, 16, 12))
    b[1] = 0.7 * a[1] + 0.1 * b[1]  # strongly correlated: FCL near 0
    fal, fcl = _numpy_facl(a.numpy(), b.numpy(), p_fal)
    for bins, red in (("mean", fal.mean(1)), ("sum", fal.sum(1))):
        np.testing.assert_allclose(facl_loss(a, b, p_fal=p_fal, bins=bins).numpy(), p_fal * red + (1 - p_fal) * fcl,
                                   rtol=1e-12)
    assert 0 < fcl[1] < 0.05 < fcl[0]
    # FCL is blind to the prediction's gain, FAL is not
    torch.testing.assert_close(facl_loss(3 * a, b, p_fal=0.0), facl_loss(a, b, p_fal=0.0))
    assert (facl_loss(3 * a, b, p_fal=1.0) > facl_loss(a, b, p_fal=1.0)).all()


# --- properties every kind has --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_zero_with_zero_gradient_for_equal_inputs(kind):
    a, _ = _pair((2, 3, 8, 8))
    x = a.clone().requires_grad_()
    value = KINDS[kind](x, a)
    value.sum().backward()
    assert torch.equal(value, torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(x.grad, torch.zeros_like(a), atol=1e-15, rtol=0)


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_finite_difference_gradients(kind):
    a, b = _pair((2, 2, 4, 6), seed=3)
    fn = KINDS[kind]
    options = {"alpha": 0.0} if kind == "focal_freq" else {}  # weights all 1: the loss's true derivative (below)
    assert torch.autograd.gradcheck(lambda x: fn(x, b, **options), (a.clone().requires_grad_(),), eps=1e-6,
                                    atol=1e-7)
    assert torch.autograd.gradcheck(lambda x, y: fn(x, y, bins="sum", **options),
                                    (a.clone().requires_grad_(), b.clone().requires_grad_()), eps=1e-6, atol=1e-6,
                                    fast_mode=True)


def test_focal_freq_gradient_is_the_frozen_weight_derivative():
    # alpha = 1: the gradient is that of sum w0 |F x - F b|^2 / N with w0 fixed at x = a (the paper's no-gradient
    # weight), by central differences in numpy
    a, b = _pair((1, 2, 4, 6), seed=5)
    A, Bn = a.numpy(), b.numpy()
    d = np.abs(np.fft.fft2(A, norm="ortho") - np.fft.fft2(Bn, norm="ortho"))
    w0 = d / d.max(axis=(-2, -1), keepdims=True)
    frozen = lambda x: (w0 * np.abs(np.fft.fft2(x, norm="ortho") - np.fft.fft2(Bn, norm="ortho")) ** 2).mean()  # noqa: E731
    fd = np.zeros_like(A)
    for i in np.ndindex(A.shape):
        e = np.zeros_like(A)
        e[i] = 1e-6
        fd[i] = (frozen(A + e) - frozen(A - e)) / 2e-6
    x = a.clone().requires_grad_()
    focal_frequency_loss(x, b).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), fd, rtol=1e-6, atol=1e-9)
    assert not np.allclose(fd, 0)


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_no_nan_at_constant_or_zero_images(kind):
    noise, _ = _pair((2, 3, 8, 8))
    flat, other, zero = torch.full_like(noise, 0.3), torch.full_like(noise, -0.7), torch.zeros_like(noise)
    for a, b in ((flat, other), (flat, flat), (zero, flat), (flat, zero), (zero, zero), (noise, flat), (zero, noise)):
        x = a.clone().requires_grad_()
        value = KINDS[kind](x, b)
        value.sum().backward()
        assert torch.isfinite(value).all() and torch.isfinite(x.grad).all(), (kind, a[0, 0, 0, 0], b[0, 0, 0, 0])
    # facl: an all-zero image has no correlation with anything: FCL = 1 (and FAL the target's spectral energy / N)
    torch.testing.assert_close(facl_loss(zero, noise, p_fal=0.0), torch.ones(2, dtype=torch.float64))


@pytest.mark.parametrize("kind, options", [("pixel_l1", {}), ("dct_multiscale", {"scales": 3}),
                                           ("focal_freq", {"patch_factor": 2}), ("facl", {"p_fal": 1.0})])
def test_sum_is_chw_times_mean(kind, options):
    a, b = _pair((2, 3, 8, 12))
    torch.testing.assert_close(KINDS[kind](a, b, bins="sum", **options),
                               3 * 8 * 12 * KINDS[kind](a, b, **options), rtol=1e-13, atol=0)


def test_facl_fcl_is_the_same_under_both_reductions():
    a, b = _pair((2, 3, 8, 12))
    torch.testing.assert_close(facl_loss(a, b, p_fal=0.0, bins="sum"), facl_loss(a, b, p_fal=0.0))


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_precision_half_and_autocast_compute_in_float32(kind):
    a, b = _pair((2, 3, 16, 16), torch.float32)
    full = KINDS[kind](a, b)
    half = KINDS[kind](a.half(), b.half())
    assert full.dtype == half.dtype == torch.float32
    torch.testing.assert_close(half, KINDS[kind](a.half().float(), b.half().float()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = KINDS[kind](a, b)
    assert auto.dtype == torch.float32 and torch.equal(auto, full)


def test_extra_middle_axes_count_as_channels():
    a, b = _pair((2, 2, 3, 8, 8))
    for kind in IMAGE_KINDS:
        torch.testing.assert_close(KINDS[kind](a, b), KINDS[kind](a.reshape(2, 6, 8, 8), b.reshape(2, 6, 8, 8)))


@pytest.mark.parametrize("kind, options, match", [
    ("dct_multiscale", {"scales": -1}, "scales"),
    ("dct_multiscale", {"scales": 2.5}, "scales"),
    ("focal_freq", {"alpha": -1.0}, "alpha"),
    ("focal_freq", {"alpha": float("nan")}, "alpha"),
    ("focal_freq", {"patch_factor": 3}, "divide"),
    ("focal_freq", {"patch_factor": 0}, "patch_factor"),
    ("focal_freq", {"log_matrix": "yes"}, "log_matrix"),
    ("facl", {"p_fal": 1.5}, "p_fal"),
    ("facl", {"p_fal": True}, "p_fal"),
])
def test_bad_options_name_the_option(kind, options, match):
    a, b = _pair((2, 3, 8, 8))
    with pytest.raises(InputError, match=match) as err:
        KINDS[kind](a, b, **options)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_bad_tensors_are_refused(kind):
    a, b = _pair((2, 3, 8, 8))
    bad = a.clone()
    bad[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        KINDS[kind](bad, b)
    assert torch.isnan(KINDS[kind](bad, b, check_finite=False)[0])  # the training hook's path
    with pytest.raises(ValueError, match="shape mismatch"):
        KINDS[kind](a, b[..., :-1])
    with pytest.raises(ValueError, match="ndim=2"):
        KINDS[kind](a[:, :, 0], b[:, :, 0])  # (B, C, W): not an image
    with pytest.raises(ValueError, match="bins"):
        KINDS[kind](a, b, bins="max")
    with pytest.raises(TypeError, match="unknown option"):
        SpectralLoss(kind, levels=2)


@pytest.mark.parametrize("kind, options", [("pixel_l1", {}), ("dct_multiscale", {"scales": 4}),
                                           ("focal_freq", {"alpha": 1.0, "patch_factor": 2}), ("facl", {"p_fal": 0.5})])
def test_regularizer_json_pickle_drop_in_and_the_edm_loss(kind, options):
    reg = Regularizer(kind, lambda_spec=0.25, weighting="unweighted", options=options)
    assert Regularizer.from_dict(json.loads(json.dumps(reg.to_dict()))) == reg
    assert pickle.loads(pickle.dumps(reg)) == reg
    a, b = _pair((2, 3, 8, 8), torch.float32)
    torch.testing.assert_close(reg(a, b, sigma=torch.tensor([0.1, 2.0])), 0.25 * KINDS[kind](a, b, **options))

    # in EDM's loss: the diffusion part is the baseline's, the term lambda_spec * w * L_S(x0_hat, x0) of this kind
    seen = {}

    def denoiser(x, sigma):  # a fixed shrinkage, not equal to x0; keeps its output to recompute L_S from
        seen["x0_hat"] = x / (1 + sigma**2)
        return seen["x0_hat"]

    x0 = torch.rand(4, 3, 8, 8) - 0.5
    base = EDMLoss()(denoiser, x0, generator=torch.Generator().manual_seed(1))
    parts = EDMLoss(regularizer=reg)(denoiser, x0, generator=torch.Generator().manual_seed(1), return_parts=True)
    torch.testing.assert_close(parts["diffusion"], base)
    torch.testing.assert_close(parts["spectral"], KINDS[kind](seen["x0_hat"], x0, **options))
    torch.testing.assert_close(parts["term"], 0.25 * parts["weight"] * parts["spectral"])
    assert bool((parts["spectral"] > 0).all())
