"""Stand-in natural-image patches: range, shape, seeding, and the natural-image power law."""

import pytest
import torch

from specreg_lib.data import ImagePatches
from specreg_lib.metrics import fit_power_law_slope, radial_power_spectrum


def test_patches_shape_range_seed():
    p = ImagePatches(size=32, scale=2)
    x = p(16, torch.Generator().manual_seed(0))
    assert x.shape == (16, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.05
    assert torch.equal(x, p(16, torch.Generator().manual_seed(0)))
    assert not torch.equal(x, p(16, torch.Generator().manual_seed(1)))


def test_patches_follow_a_power_law():
    x = ImagePatches(size=64, scale=1)(64, torch.Generator().manual_seed(0))
    freqs, power = radial_power_spectrum(x)
    slope = fit_power_law_slope(freqs, power, fmin=0.03, fmax=0.5)
    assert -4.0 < slope < -1.0  # natural images: P(f) ~ f^-2 give or take


def test_bad_patch_config():
    with pytest.raises(ValueError):
        ImagePatches(images=("lena",))
    with pytest.raises(ValueError):
        ImagePatches(size=400, scale=2)(1)
