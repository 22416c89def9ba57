"""The image study's stand-in data: dead leaves against Matheron's exact formulas, and the photo patches' held-out
sources (with the default output pinned to numbers recorded at commit 79b0db0, before the split existed)."""

import hashlib
import math
import pickle

import numpy as np
import pytest
import torch
from scipy import integrate

from specreg_lib.data import DeadLeaves, DeadLeavesError, same_leaf_probability
from specreg_lib.data.patches import EVAL_IMAGES, SKIMAGE_IMAGES, ImagePatches, PatchError, load_gray
from specreg_lib.errors import InputError
from specreg_lib.metrics import fit_power_law_slope, radial_power_spectrum

N_IMAGES = 1024  # ~1.5 s to render at 32x32 on one core
pytestmark = pytest.mark.usefixtures("one_thread")


def same_leaf_oracle(d: float, r_min: float, r_max: float, alpha: float) -> float:
    """Matheron: P(two points d apart show one leaf) = g / (2 E|D| - g), g = E|D cap (D+d)|; written out with
    circular segments (half-chord h = d/2: lens = 2 (r^2 acos(h/r) - h sqrt(r^2 - h^2))) and adaptive quadrature."""
    h = d / 2

    def lens(r: float) -> float:
        return 2 * (r * r * math.acos(h / r) - h * math.sqrt(r * r - h * h)) if r > h else 0.0

    g = integrate.quad(lambda r: lens(r) * r ** -alpha, r_min, r_max, points=[max(h, r_min)], limit=200)[0]
    area = integrate.quad(lambda r: math.pi * r * r * r ** -alpha, r_min, r_max)[0]
    return g / (2 * area - g)


def expected_radial_spectrum(L: int, r_min: float, r_max: float, alpha: float, var: float) -> np.ndarray:
    """E[|fft2 x|^2 / L^2], radially binned like metrics.spectra: sum over lags of C(lag) times the Fejer
    (triangle) weights of a finite L x L window, with C(lag) = var * same-leaf probability at |lag|."""
    lags = np.arange(-(L - 1), L)
    dist = np.hypot(lags[:, None], lags[None, :])
    p_same = {d: same_leaf_oracle(d, r_min, r_max, alpha) if d > 0 else 1.0 for d in np.unique(dist)}
    cov = var * np.vectorize(p_same.get)(dist) * np.outer(1 - abs(lags) / L, 1 - abs(lags) / L)
    k = np.arange(L)
    phase = np.exp(-2j * np.pi * np.outer(k, lags) / L)  # (L, 2L-1) DFT at k/L
    S = (phase @ cov @ phase.T).real  # (L, L) expected periodogram
    f = np.fft.fftfreq(L)
    which = np.floor(np.hypot(f[:, None], f[None, :]) * L + 0.5).astype(int)
    return np.array([S[which == i].mean() for i in range(L // 2 + 1)])


@pytest.fixture(scope="module")
def leaves(one_thread) -> torch.Tensor:
    return DeadLeaves(size=32)(N_IMAGES, torch.Generator().manual_seed(0)).double()


def equal_fraction(x: torch.Tensor, d: int, axis: int) -> torch.Tensor:
    """Per column (axis=-1) or row (axis=-2) offset: fraction of pixel pairs d apart with identical RGB."""
    a, b = x.narrow(axis, d, x.shape[axis] - d), x.narrow(axis, 0, x.shape[axis] - d)
    same = (a == b).all(1)  # (B, ...) one leaf <=> same colour (continuous colours never repeat)
    return same.double().mean((0, 1) if axis == -1 else (0, 2))


def test_shape_range_seed_and_colours():
    dl = DeadLeaves(size=24)
    x = dl(6, torch.Generator().manual_seed(1))
    assert x.shape == (6, 3, 24, 24) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, dl(6, torch.Generator().manual_seed(1)))
    assert not torch.equal(x, dl(6, torch.Generator().manual_seed(2)))
    assert not torch.equal(x[:, 0], x[:, 1])  # rgb: channels independent
    g = DeadLeaves(size=24, color="gray")(6, torch.Generator().manual_seed(1))
    assert torch.equal(g[:, 0], g[:, 1]) and torch.equal(g[:, 1], g[:, 2])
    assert DeadLeaves(size=5)(0).shape == (0, 3, 5, 5)
    assert pickle.loads(pickle.dumps(dl)) == dl  # saved configs and DataLoader workers pickle samplers


def test_same_leaf_probability_matches_quadrature():
    for r_min, r_max, alpha in ((1.0, 32.0, 3.0), (0.5, 10.0, 4.0), (2.0, 64.0, 2.5)):
        for d in (0.5, 1.0, 3.0, 7.5, 20.0):
            got = same_leaf_probability(torch.tensor([d]), r_min, r_max, alpha).item()
            assert got == pytest.approx(same_leaf_oracle(d, r_min, r_max, alpha), rel=1e-4, abs=1e-7)


def test_pixel_pairs_share_a_leaf_as_matheron_predicts(leaves):
    # Occlusion edges: pixels d apart are identical iff one leaf covers both, with Matheron's probability.
    # Tolerance: over 16 independent batches of 1024 images the fraction's std is <= 0.0054 (measured), so 0.02;
    # discs centred only inside the window miss by up to 0.038, radii not reweighted for the grown window by 0.12.
    for d in (1, 2, 4, 8, 16):
        want = same_leaf_oracle(d, 1.0, 32.0, 3.0)
        for axis in (-1, -2):
            assert equal_fraction(leaves, d, axis).mean().item() == pytest.approx(want, abs=0.02)
    # stationary up to the border: the border column pairs and the middle ones both show the infinite plane's
    # statistics (std of each over batches of 1024: 0.003; centres only inside the window: middle off by 0.023)
    per_col, want = equal_fraction(leaves, 1, -1), same_leaf_oracle(1, 1.0, 32.0, 3.0)
    assert per_col[[0, -1]].mean().item() == pytest.approx(want, abs=0.015)
    assert per_col[8:24].mean().item() == pytest.approx(want, abs=0.015)


def test_other_radius_law_matches_too():
    # r in [2, 64], alpha 3.5: one leaf at d = 1, 3 with probability 0.774, 0.462 (the default law: 0.702, 0.385)
    x = DeadLeaves(size=32, r_min=2.0, r_max=64.0, alpha=3.5)(512, torch.Generator().manual_seed(3))
    for d in (1, 3):
        want = same_leaf_oracle(d, 2.0, 64.0, 3.5)
        assert equal_fraction(x, d, -1).mean().item() == pytest.approx(want, abs=0.02)  # measured std <= 0.005


def test_colour_covariance_is_matheron_times_colour_variance(leaves):
    # colours uniform in [-1, 1]: mean 0, variance 1/3, independent across leaves (measured std 0.0023)
    for d in (1, 4):
        cov = (leaves[..., d:] * leaves[..., :-d]).mean().item()
        assert cov == pytest.approx(same_leaf_oracle(d, 1.0, 32.0, 3.0) / 3, abs=0.01)


def test_power_spectrum_is_the_predicted_one_and_close_to_f_minus_2(leaves):
    freqs, power = radial_power_spectrum(leaves)
    measured = power.mean(0).numpy()
    predicted = expected_radial_spectrum(32, 1.0, 32.0, 3.0, var=1 / 3)
    # every bin above DC within 5% of the exact expectation (per-bin std over batches of 1024: 0.01; DC's is 0.05,
    # so it gets 25%); centres only inside the window are off by up to 9%
    np.testing.assert_allclose(measured[1:], predicted[1:], rtol=0.05)
    assert measured[0] == pytest.approx(predicted[0], rel=0.25)
    # Lee, Mumford & Huang: scale-invariant leaves (alpha = 3) give P ~ f^-2 where 1/r_max << f << 1/r_min. With
    # r in [1, 32] pixels the exact expectation has slope -1.99 over f in [1/16, 1/2] (-1.87 over the whole band,
    # bent by the finite range); over 16 batches of 256 images the fitted slope's std is 0.01. Tolerance 0.1.
    assert fit_power_law_slope(freqs.numpy(), predicted, 1 / 16, 0.5) == pytest.approx(-2.0, abs=0.05)
    assert fit_power_law_slope(freqs, power, 1 / 16, 0.5) == pytest.approx(-2.0, abs=0.1)


def test_discs_cap_falls_back_to_the_background_leaf():
    x = DeadLeaves(size=16, max_discs=1, chunk=1)(8, torch.Generator().manual_seed(4))
    for img in x:  # one disc over one background leaf: at most two colours per image
        assert torch.unique(img.flatten(1), dim=1).shape[1] <= 2


@pytest.mark.gpu
def test_renders_on_the_generator_device():
    x = DeadLeaves(size=32)(1024, torch.Generator(device="cuda").manual_seed(0))
    assert x.device.type == "cuda" and x.shape == (1024, 3, 32, 32)
    want = same_leaf_oracle(1, 1.0, 32.0, 3.0)  # CUDA's random stream: other images, the same law
    assert equal_fraction(x.double().cpu(), 1, -1).mean().item() == pytest.approx(want, abs=0.02)


@pytest.mark.parametrize("kwargs", [dict(size=1), dict(size=True), dict(r_min=0.0), dict(r_min=4.0, r_max=2.0),
                                    dict(r_max=float("inf")), dict(alpha=float("nan")), dict(color="hsv"),
                                    dict(max_discs=0), dict(chunk=2.5)])
def test_bad_dead_leaves_options(kwargs):
    with pytest.raises(DeadLeavesError) as e:
        DeadLeaves(**kwargs)
    assert isinstance(e.value, InputError) and isinstance(e.value, ValueError)
    with pytest.raises(DeadLeavesError, match="batch_size"):
        DeadLeaves()(-1)


# ---- photo patches: held-out sources ----

# Recorded at commit 79b0db0 (before `split` existed): sha256 of the float32 bytes and pixels 0, 17, 101, 255.
HEAD_PATCHES = [
    (dict(size=32, scale=2), 8, 0, "baddc08a92cb8f6cfdee9db780d75ec871f78a93ed7508a8298976e500c3c689",
     [-0.5883976221084595, -0.5550642609596252, -0.5687897801399231, -0.5378378629684448]),
    (dict(size=16, scale=1), 5, 3, "e8c9d319c2ea7d8b8a06b9c491f587c7f9abcb99fd102fc8bf29cb14a4ca1d66",
     [-0.6549019813537598, 0.7803921699523926, 0.16078431904315948, -0.04313725605607033]),
    (dict(size=8, scale=4, images=("camera", "moon")), 4, 7,
     "426d3cb8bfb3483cf1baa9de6b25a473baaaf00e2bf2e4efe2e2987a524e9560",
     [-0.10588237643241882, -0.10000001639127731, 0.20539216697216034, -0.7794117331504822]),
]


@pytest.mark.parametrize("kwargs,batch,seed,sha,pixels", HEAD_PATCHES)
def test_default_patches_unchanged(kwargs, batch, seed, sha, pixels):
    x = ImagePatches(**kwargs)(batch, torch.Generator().manual_seed(seed))
    assert x.flatten()[[0, 17, 101, 255]].tolist() == pixels
    assert hashlib.sha256(x.numpy().tobytes()).hexdigest() == sha
    assert ImagePatches(**kwargs, split=None) == ImagePatches(**kwargs)


def test_splits_partition_the_sources():
    train, held = ImagePatches(split="train").sources, ImagePatches(split="eval").sources
    assert len(set(SKIMAGE_IMAGES)) == 10 and len(held) >= 2
    assert set(held) == set(EVAL_IMAGES) and not set(train) & set(held)
    assert set(train) | set(held) == set(SKIMAGE_IMAGES)
    assert ImagePatches(images=("camera", "gravel", "moon"), split="eval").sources == ("gravel",)


def _found_in(patch: torch.Tensor, names: tuple[str, ...]) -> bool:
    """Is this (s, s) patch, or its mirror, an exact window of one of the named photos?"""
    s = patch.shape[-1]
    for name in names:
        img = load_gray(name)
        rows = img.unfold(1, s, 1)  # (H, W - s + 1, s): every s-pixel row segment
        for p in (patch, patch.flip(-1)):
            for y, x in (rows == p[0]).all(-1).nonzero().tolist():  # where the first row matches
                if y + s <= img.shape[0] and torch.equal(img[y:y + s, x:x + s], p):
                    return True
    return False


def test_every_patch_comes_from_its_split():
    train, held = ImagePatches(split="train").sources, ImagePatches(split="eval").sources
    for split, own in (("eval", held), ("train", train)):
        x = ImagePatches(size=8, scale=1, split=split)(6, torch.Generator().manual_seed(5))
        assert all(_found_in(p[0], own) for p in x), split
    # the check can fail: eval patches are not windows of the training photos
    x = ImagePatches(size=8, scale=1, split="eval")(3, torch.Generator().manual_seed(6))
    assert not any(_found_in(p[0], train) for p in x)


def test_bad_split():
    for kwargs in (dict(split="test"), dict(images=("camera",), split="eval"), dict(images=EVAL_IMAGES, split="train")):
        with pytest.raises(PatchError) as e:
            ImagePatches(**kwargs)
        assert isinstance(e.value, InputError) and isinstance(e.value, ValueError)
