"""Library helpers of the teaching notebook (01): the bundled-photo loader and the naive Eq. 15 reference."""

from __future__ import annotations

import pytest
import torch

from specreg_lib.data.patches import load_gray, photo
from specreg_lib.spectral import amplitude_phase_loss
from specreg_lib.spectral.reference import naive_amplitude_phase_loss


def test_photo_is_block_averaged_centre_crop():
    cam = photo("camera", 128)
    assert cam.shape == (1, 1, 128, 128) and cam.dtype == torch.float32
    ref = torch.nn.functional.avg_pool2d(load_gray("camera")[None, None], 4)  # 512 / 128 = 4
    torch.testing.assert_close(cam, ref, rtol=0, atol=1e-6)
    cat = photo("chelsea", 100)  # 300 x 451: centre 300 x 300 square, 3x3 blocks
    square = load_gray("chelsea")[:, 75:375]
    torch.testing.assert_close(cat[0, 0], torch.nn.functional.avg_pool2d(square[None, None], 3)[0, 0],
                               rtol=0, atol=1e-6)
    assert -1 <= float(cat.min()) and float(cat.max()) <= 1
    with pytest.raises(ValueError, match="size must be <= 300"):
        photo("chelsea", 301)
    with pytest.raises(ValueError, match="unknown image"):
        photo("lena", 64)


def test_naive_eq15_has_the_safe_loss_value_but_not_its_gradient():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 2, 16, 12, generator=g, dtype=torch.float64)
    x0_hat = torch.randn(3, 2, 16, 12, generator=g, dtype=torch.float64)
    torch.testing.assert_close(naive_amplitude_phase_loss(x0_hat, x0),
                               amplitude_phase_loss(x0_hat, x0, wrap_phase=False), rtol=1e-10, atol=1e-12)
    # An almost-constant prediction: the naive phase gradient explodes, the safe one stays at the amplitude's scale.
    x0 = photo("camera", 32)
    near = (0.1 + 1e-8 * torch.randn(x0.shape, generator=g)).requires_grad_()
    naive = torch.autograd.grad(naive_amplitude_phase_loss(near, x0).sum(), near)[0].norm()
    safe = torch.autograd.grad(amplitude_phase_loss(near, x0).sum(), near)[0].norm()
    assert naive > 1e4 * safe and safe < 1


def test_notebook_01_formulas_written_out_match_the_library():
    """Notebook 01 cites these: Eq. 15 (both couplings, wrapped phase), Eq. 16 per band, Parseval on a dropped band."""
    from specreg_lib.spectral import wavedec, wavelet_loss

    cam, ast = photo("camera", 64).double(), photo("astronaut", 64).double()
    F_cam, F_ast = torch.fft.fft2(cam, norm="ortho"), torch.fft.fft2(ast, norm="ortho")
    dA = (F_ast.abs() - F_cam.abs()).abs()
    dphi = torch.angle(F_ast * F_cam.conj()).abs()  # wrapped into [0, pi]
    want = {"per_frequency": (dA * (1 + dphi)).mean(), "global": dA.mean() * (1 + dphi.mean())}
    for coupling, value in want.items():
        torch.testing.assert_close(amplitude_phase_loss(ast, cam, coupling=coupling)[0], value)
    blurred = torch.nn.functional.avg_pool2d(cam, 3, stride=1, padding=1, count_include_pad=False)
    eA, e2, e1 = wavedec(blurred - cam, "haar", levels=2)
    bands = [eA] + [d[:, :, i] for d in (e2, e1) for i in range(3)]
    torch.testing.assert_close(wavelet_loss(blurred, cam, levels=2)[0], sum(b.abs().mean() for b in bands))
    freqs = torch.fft.fftfreq(64)
    radius = freqs[:, None].hypot(freqs[None, :])
    lowpass = torch.fft.ifft2(F_cam * (radius <= 1 / 8), norm="ortho").real
    torch.testing.assert_close((lowpass - cam).square().sum(), F_cam.abs().square()[..., radius > 1 / 8].sum())
