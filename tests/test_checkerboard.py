"""The checkerboard family and its metrics: exact periodicity, seeded sampling, classifier and spectral peaks."""

import pytest
import torch

from specreg_lib.data import CheckerboardFamily
from specreg_lib.metrics import binariness, is_valid, match_error, peak_energy, structure_metrics


def test_family_values_periodicity_and_seed():
    fam = CheckerboardFamily(size=32, sides=(2, 4))
    x = fam(64, torch.Generator().manual_seed(0))
    assert x.shape == (64, 1, 32, 32) and set(x.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(x, fam(64, torch.Generator().manual_seed(0)))
    assert torch.equal(x, torch.roll(x, shifts=(8, 8), dims=(2, 3)))  # period 2*side divides 8
    bank, sides = fam.members()
    assert bank.shape == (4 * 4 + 8 * 8, 32, 32)
    assert len(torch.unique(bank.flatten(1), dim=0)) == 2 * 2**2 + 2 * 4**2  # 2 s^2 distinct per side


def test_metrics_on_ground_truth_and_noise():
    fam = CheckerboardFamily()
    x = fam(32, torch.Generator().manual_seed(1))
    m = structure_metrics(x, fam, reference=x)
    assert m == {"valid_fraction": 1.0, "match_error": 0.0, "binariness": 1.0,
                 "peak_energy_ratio": pytest.approx(1.0), "in_band_fraction": pytest.approx(1.0)}
    noise = torch.randn(32, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    m = structure_metrics(noise, fam, reference=x)
    assert m["valid_fraction"] == 0.0 and m["in_band_fraction"] < 0.05 and m["peak_energy_ratio"] < 0.05


def test_classifier_tolerance_and_side():
    fam = CheckerboardFamily()
    x = fam(4, torch.Generator().manual_seed(3))
    flipped = x.clone()
    flipped[:, :, :3, :] *= -1  # 3 of 64 rows wrong = 4.7% of pixels
    err, side = match_error(flipped, fam)
    assert torch.allclose(err, torch.full((4,), 3 / 64))
    assert is_valid(flipped, fam).all() and not is_valid(flipped, fam, tol=0.04).any()
    assert set(side.tolist()) <= {2, 4}
    assert torch.allclose(binariness(0.95 * x), torch.ones(4))
    assert torch.allclose(binariness(0.5 * x), torch.zeros(4))


def test_peak_mask_matches_odd_harmonics():
    fam = CheckerboardFamily(size=64, sides=(2,))
    mask = fam.peak_mask()
    assert mask.sum() == 4 and mask[16, 16] and mask[48, 48] and mask[16, 48]
    on_peak, share = peak_energy(fam(2), fam)
    assert torch.allclose(share, torch.ones(2)) and torch.allclose(on_peak, torch.full((2,), 64.0**2))


def test_bad_family():
    with pytest.raises(ValueError):
        CheckerboardFamily(size=64, sides=(3,))


def test_structure_metrics_default_tolerance_is_five_percent_of_pixels():
    """The headline valid fractions (figures/*/02_checkerboard_toy) use tol=0.05: pinned on hand-made samples."""
    import numpy as np

    fam = CheckerboardFamily(size=64, sides=(2, 4))
    i, j = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    rng = np.random.default_rng(0)
    flips = np.array([0.02, 0.04, 0.07, 0.12])  # share of pixels whose sign is wrong, one sample each
    boards = []
    for k, share in enumerate(flips):
        side, oy, ox = (2, 4)[k % 2], k, 2 * k
        sign = (-1.0) ** ((i + oy) // side + (j + ox) // side)  # a family member written out
        wrong = rng.choice(64 * 64, size=round(share * 64 * 64), replace=False)
        sign.flat[wrong] *= -1
        boards.append(sign * (1 - 0.08 * rng.random((64, 64))))  # near-binary: |x| in (0.92, 1]
    x = torch.tensor(np.stack(boards)[:, None], dtype=torch.float32)
    # another member differs from a sample's own on >= 25% of pixels, so 12% flips still match their own member
    assert torch.allclose(match_error(x, fam)[0], torch.tensor(flips, dtype=torch.float32), atol=1 / 4096)
    m = structure_metrics(x, fam)
    expected = float(np.mean(flips <= 0.05))  # 2 of 4 (0.10 would give 3 of 4)
    assert m["valid_fraction"] == expected and m["binariness"] == 1.0
    assert structure_metrics(x, fam, tol=0.10)["valid_fraction"] == float(np.mean(flips <= 0.10)) != expected
