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
