"""Eqs. 14-15: exact values against the two-sided DFT, invariances, Parseval, gradient safety."""

import math

import pytest
import torch

from specreg_lib.spectral import amplitude_loss, amplitude_phase_loss


def _naive(x0_hat, x0, ndim=2, norm="ortho"):
    """Two full fftn: (|dA|, raw dphi) over the two-sided spectrum."""
    dims = tuple(range(-ndim, 0))
    Fh, F = torch.fft.fftn(x0_hat, dim=dims, norm=norm), torch.fft.fftn(x0, dim=dims, norm=norm)
    return (Fh.abs() - F.abs()).abs(), torch.angle(Fh) - torch.angle(F)


def _wrap(d):
    return torch.remainder(d + math.pi, 2 * math.pi) - math.pi


SHAPES = [((2, 3, 8, 8), 2), ((2, 3, 9, 7), 2), ((3, 1, 33), 1), ((2, 2, 4, 6, 5), 3)]


@pytest.mark.parametrize("shape,ndim", SHAPES)
@pytest.mark.parametrize("norm", ["ortho", "backward", "forward"])
def test_values_equal_two_sided_formulas(shape, ndim, norm):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    dA, dphi = _naive(a, b, ndim, norm)
    mean = lambda v: v.flatten(1).mean(1)  # noqa: E731
    torch.testing.assert_close(amplitude_loss(a, b, ndim, norm), mean(dA), rtol=1e-12, atol=1e-12)
    ap = amplitude_phase_loss(a, b, ndim, norm)
    torch.testing.assert_close(ap, mean(dA * (1 + _wrap(dphi).abs())), rtol=1e-12, atol=1e-12)
    ap_raw = amplitude_phase_loss(a, b, ndim, norm, wrap_phase=False)
    torch.testing.assert_close(ap_raw, mean(dA * (1 + dphi.abs())), rtol=1e-12, atol=1e-12)
    ap_glob = amplitude_phase_loss(a, b, ndim, norm, coupling="global")
    torch.testing.assert_close(ap_glob, mean(dA) * (1 + mean(_wrap(dphi).abs())), rtol=1e-12, atol=1e-12)


def test_zero_on_identical_and_symmetric():
    x, y = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    for f in (amplitude_loss, amplitude_phase_loss):
        assert torch.equal(f(x, x), torch.zeros(4))
        torch.testing.assert_close(f(x, y), f(y, x))
    assert (amplitude_phase_loss(x, y) > amplitude_loss(x, y)).all()


def test_amplitude_invariant_to_circular_shift_phase_is_not():
    x, y = torch.randn(2, 3, 16, 16, dtype=torch.float64), torch.randn(2, 3, 16, 16, dtype=torch.float64)
    xs = torch.roll(x, shifts=(3, -5), dims=(-2, -1))
    torch.testing.assert_close(amplitude_loss(xs, y), amplitude_loss(x, y), rtol=1e-12, atol=1e-12)
    assert amplitude_loss(xs, x).abs().max() < 1e-12
    assert (amplitude_phase_loss(xs, x, coupling="global") < 1e-12).all()  # dA = 0 kills the product
    assert (amplitude_phase_loss(xs, x + 0.1) > amplitude_phase_loss(x, x + 0.1)).all()


def test_scaling_behaviour():
    x, y = torch.randn(2, 3, 16, 16, dtype=torch.float64), torch.randn(2, 3, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(amplitude_loss(3 * x, 3 * y), 3 * amplitude_loss(x, y))
    # The phase is scale free, so Eq. 15 is positively homogeneous of degree 1 too.
    torch.testing.assert_close(amplitude_phase_loss(3 * x, 3 * y), 3 * amplitude_phase_loss(x, y))
    n = 16 * 16  # norm changes the scale by sqrt(N) each way
    torch.testing.assert_close(amplitude_loss(x, y, norm="backward"), math.sqrt(n) * amplitude_loss(x, y))
    torch.testing.assert_close(amplitude_loss(x, y, norm="forward"), amplitude_loss(x, y) / math.sqrt(n))


def test_parseval_l2_is_blind_l1_is_not():
    """Eq. 10: an L2 error is the same in pixel and Fourier space; an L1 error is not (the paper's point)."""
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    X = torch.fft.fft2(x, norm="ortho")
    torch.testing.assert_close(x.square().sum((-2, -1)), X.abs().square().sum((-2, -1)))
    # Two errors of equal energy: one white, one concentrated in a single frequency.
    white = torch.randn(1, 1, 32, 32, dtype=torch.float64)
    tone = torch.cos(2 * math.pi * 5 * torch.arange(32.0, dtype=torch.float64) / 32).expand(1, 1, 32, 32)
    tone = tone * white.norm() / tone.norm()
    zero = torch.zeros_like(white)
    assert abs(white.square().sum() - tone.square().sum()) < 1e-9
    assert amplitude_loss(white, zero) > 3 * amplitude_loss(tone, zero)  # L1 in Fourier sees the spread


def _grad_norm(f, x0_hat, x0):
    x0_hat = x0_hat.clone().requires_grad_()
    (g,) = torch.autograd.grad(f(x0_hat, x0).sum(), x0_hat)
    assert torch.isfinite(g).all()
    return g.norm().item()


@pytest.mark.parametrize("noise", [1e-6, 1e-8, 0.0])
@pytest.mark.parametrize("coupling", ["per_frequency", "global"])
def test_phase_gradient_bounded_for_nearly_constant_prediction(noise, coupling):
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    x0_hat = 0.1 + noise * torch.randn(x0.shape, generator=g)
    ap = _grad_norm(lambda a, b: amplitude_phase_loss(a, b, coupling=coupling), x0_hat, x0)
    amp = _grad_norm(amplitude_loss, x0_hat, x0)
    assert ap < 10 * max(amp, 1e-3)


def test_naive_phase_gradient_does_blow_up():
    """The problem the fix addresses, measured: the naive product's gradient grows like 1/|F x0_hat|."""
    x0 = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    x0_hat = 0.1 + 1e-8 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))

    def naive(a, b):
        dA, dphi = _naive(a, b)
        return (dA * (1 + dphi.abs())).flatten(1).mean(1)

    assert _grad_norm(naive, x0_hat, x0) > 1e3 * _grad_norm(amplitude_phase_loss, x0_hat, x0)


@pytest.mark.parametrize("wrap", [True, False])
def test_exactly_zero_spectra_give_finite_gradients(wrap):
    """A checkerboard (and a constant, and all zeros) has an exactly zero spectrum at most bins."""
    i = torch.arange(16)
    checker = (((i[:, None] // 4 + i[None, :] // 4) % 2) * 2.0 - 1).expand(2, 3, 16, 16)
    x0_hat = 0.1 * torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    f = lambda a, b: amplitude_phase_loss(a, b, wrap_phase=wrap)  # noqa: E731
    ap = _grad_norm(f, x0_hat, checker)
    assert ap < 10 * _grad_norm(amplitude_loss, x0_hat, checker)
    zeros, const = torch.zeros(2, 3, 16, 16), torch.full((2, 3, 16, 16), 0.5)
    for a, b in [(zeros, zeros), (zeros, checker), (const, checker), (checker, zeros), (const, const)]:
        for loss in (amplitude_loss, f):
            _grad_norm(loss, a, b)
            assert torch.isfinite(loss(a, b)).all()


def test_gradients_match_autograd_of_naive_formula_on_generic_inputs():
    a, b = torch.randn(2, 2, 8, 8, dtype=torch.float64), torch.randn(2, 2, 8, 8, dtype=torch.float64)

    def naive(x, y):
        dA, dphi = _naive(x, y)
        return (dA * (1 + _wrap(dphi).abs())).flatten(1).mean(1)

    ga = torch.autograd.grad(amplitude_phase_loss(a.requires_grad_(), b, phase_eps=1e-6).sum(), a)[0]
    gn = torch.autograd.grad(naive(a, b).sum(), a)[0]
    torch.testing.assert_close(ga, gn, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("ndim", [1, 2])
def test_gradcheck_float64(ndim):
    shape = (2, 2, 6, 5) if ndim == 2 else (2, 2, 9)
    a = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    b = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: amplitude_loss(x, y, ndim), (a, b))
    # The phase Jacobian is softened by phase_eps; with a tiny eps it is the exact one.
    assert torch.autograd.gradcheck(lambda x, y: amplitude_phase_loss(x, y, ndim, phase_eps=1e-9), (a, b))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_half_precision_computed_in_float32(dtype):
    x, y = torch.randn(3, 2, 8, 8), torch.randn(3, 2, 8, 8)
    for f in (amplitude_loss, amplitude_phase_loss):
        out = f(x.to(dtype), y.to(dtype))
        assert out.shape == (3,) and out.dtype == torch.float32
        torch.testing.assert_close(out, f(x.to(dtype).float(), y.to(dtype).float()))
