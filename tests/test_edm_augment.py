"""EDM's non-leaky augmentation (specreg_lib.data.augment): labels, exact flips, closed-form geometry."""

import math

import numpy as np
import pytest
import torch

from specreg_lib.data.augment import AUGMENT_DIM, AugmentPipe

OFF = dict(xflip=0, yflip=0, scale=0, rotate_frac=0, aniso=0, translate_frac=0)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_p0_leaves_images_and_labels_zero():
    x = torch.randn(16, 3, 12, 12)
    y, labels = AugmentPipe(p=0.0)(x, _g())
    assert torch.equal(y, x)
    assert labels.shape == (16, AUGMENT_DIM) and labels.dtype == torch.float32
    assert torch.equal(labels, torch.zeros(16, AUGMENT_DIM))


def test_xflip_label_iff_exactly_mirrored():
    x = torch.randn(64, 3, 8, 8)
    y, labels = AugmentPipe(p=0.15, **{**OFF, "xflip": 1e8})(x, _g(1))  # 1e8 * 0.15 >= 1: always drawn
    flipped = labels[:, 0] == 1
    assert 10 < int(flipped.sum()) < 54  # a fair coin over 64 samples
    assert torch.equal(y[flipped], x[flipped].flip(3)) and torch.equal(y[~flipped], x[~flipped])
    assert torch.equal(labels[:, 1:], torch.zeros(64, AUGMENT_DIM - 1))


@pytest.mark.parametrize("op, columns", [("yflip", [1]), ("scale", [2]), ("rotate_frac", [3, 4]),
                                         ("aniso", [5, 6]), ("translate_frac", [7, 8])])
def test_label_layout(op, columns):
    """Each op writes its own columns, in EDM's order, and nothing else."""
    _, labels = AugmentPipe(p=1.0, **{**OFF, op: 1.0})(torch.randn(32, 1, 8, 8), _g(2))
    others = [c for c in range(AUGMENT_DIM) if c not in columns]
    assert torch.equal(labels[:, others], torch.zeros(32, len(others)))
    assert bool((labels[:, columns].abs().sum(1) > 0).float().mean() > 0.4)  # op applied (prob 1; aniso r may be 0)


def test_application_rate_is_op_prob_times_p():
    _, labels = AugmentPipe(p=0.25, **{**OFF, "scale": 1.0})(torch.zeros(4000, 1, 4, 4), _g(3))
    rate = float((labels[:, 2] != 0).float().mean())
    assert abs(rate - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 4000)


def _ramp(n: int) -> torch.Tensor:
    """Image (1, 2, n, n): channel 0 = centred x coordinate, channel 1 = centred y (pixels)."""
    c = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    return torch.stack([c.expand(n, n), c[:, None].expand(n, n)])[None]


# bilinear is exact on a linear ramp; torch's bicubic kernel (a = -0.75) reproduces ramps to ~0.03 pixel only
@pytest.mark.parametrize("resample, atol", [("bilinear", 1e-5), ("supersample", 1e-5), ("bicubic", 0.05)])
def test_translation_matches_closed_form(resample, atol):
    n, std = 32, 0.125
    x = _ramp(n)
    pipe = AugmentPipe(p=1.0, **{**OFF, "translate_frac": 1.0}, translate_frac_std=std, resample=resample)
    y, labels = pipe(x, _g(4))
    tx, ty = (labels[0, 7] * n * std).double(), (labels[0, 8] * n * std).double()
    inner = slice(12, 20)  # away from the reflected border
    # output(x, y) = input(x - tx, y - ty): the image moves by +t; bilinear is exact on a linear ramp
    assert torch.allclose(y[0, 0, inner, inner], x[0, 0, inner, inner] - tx, atol=atol)
    assert torch.allclose(y[0, 1, inner, inner], x[0, 1, inner, inner] - ty, atol=atol)


def test_rotation_direction_matches_labels():
    """G maps output to input coordinates: x_in = cos(t) x - sin(t) y, y_in = sin(t) x + cos(t) y (EDM's)."""
    n = 32
    x = _ramp(n)
    y, labels = AugmentPipe(p=1.0, **{**OFF, "rotate_frac": 1.0}, rotate_frac_max=0.05)(x, _g(5))
    cos, sin = labels[0, 3].double() + 1, labels[0, 4].double()
    assert abs(float(cos**2 + sin**2) - 1) < 1e-6 and abs(float(sin)) > 1e-3
    inner = slice(13, 19)
    X, Y = x[0, 0, inner, inner], x[0, 1, inner, inner]
    assert torch.allclose(y[0, 0, inner, inner], cos * X - sin * Y, atol=1e-4)
    assert torch.allclose(y[0, 1, inner, inner], sin * X + cos * Y, atol=1e-4)


def test_scale_zooms_by_two_to_the_label():
    n, std = 32, 0.2
    x = _ramp(n)
    y, labels = AugmentPipe(p=1.0, **{**OFF, "scale": 1.0}, scale_std=std)(x, _g(6))
    s = 2 ** (labels[0, 2].double() * std)
    inner = slice(14, 18)
    assert torch.allclose(y[0, 0, inner, inner], x[0, 0, inner, inner] / s, atol=1e-5)  # zoom in by s


def test_deterministic_with_generator_and_shapes():
    x = torch.randn(8, 3, 16, 16)
    pipe = AugmentPipe(p=0.5)
    a, la = pipe(x, _g(7))
    b, lb = pipe(x, _g(7))
    c, lc = pipe(x, _g(8))
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(la, lc)
    assert a.shape == x.shape and a.dtype == x.dtype


def test_from_record_and_bad_settings():
    record = {"class_name": "AugmentPipe", "init_kwargs": {"p": 0.12, "xflip": 1e8, "yflip": 1, "scale": 1,
                                                            "rotate_frac": 1, "aniso": 1, "translate_frac": 1},
              "attributes": {"p": 0.12, "brightness": 0.0}}
    pipe = AugmentPipe.from_record(record)
    assert pipe.p == 0.12 and pipe.xflip == 1e8 and pipe.scale_std == 0.2
    assert AugmentPipe.from_record(record, p=0.0).p == 0.0
    assert AugmentPipe.from_record(None, p=0.15) == AugmentPipe(p=0.15)
    with pytest.raises(ValueError, match="brightness"):
        AugmentPipe.from_record({**record, "attributes": {"brightness": 1.0}})
    with pytest.raises(ValueError, match="p and aniso_rotate_prob"):
        AugmentPipe(p=1.5)
    with pytest.raises(ValueError, match="float image batch"):
        AugmentPipe(p=0.1)(torch.zeros(2, 8, 8))


# ---- Each op, forced on, moves an off-centre blob where its returned label says (closed forms in numpy) ----
# Centred pixel coordinates (x right, y DOWN); an affine warp out(q) = in(G q) moves an intensity centroid c to
# G^-1 c exactly in the continuum, so a smooth blob's centroid checks the op against its label to ~0.05 px.
BLOB_N, BLOB_C = 40, np.array([4.0, -3.0])  # off-centre in both axes, so every mirror and stretch shows


def _blob_batch(batch: int = 16) -> torch.Tensor:
    """(batch, 1, N, N) float64: a Gaussian blob (sigma 1.2 px) centred at BLOB_C, far from the border."""
    u = np.arange(BLOB_N) - (BLOB_N - 1) / 2
    X, Y = np.meshgrid(u, u)  # X along columns (x), Y along rows (y down)
    img = np.exp(-((X - BLOB_C[0]) ** 2 + (Y - BLOB_C[1]) ** 2) / (2 * 1.2**2))
    return torch.from_numpy(np.repeat(img[None, None], batch, 0))


def _centroid(img: torch.Tensor) -> np.ndarray:
    """(H, W) -> intensity-weighted (x, y) in centred pixel coordinates."""
    a = img.double().numpy()
    u = np.arange(a.shape[-1]) - (a.shape[-1] - 1) / 2
    X, Y = np.meshgrid(u, u)
    return np.array([(a * X).sum(), (a * Y).sum()]) / a.sum()


def _predicted(op: str, lab: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Where the label lab (9,) says the centroid c goes (edm.md / EDM's AugmentPipe conventions)."""
    if op == "xflip":
        return np.array([-c[0], c[1]]) if lab[0] == 1 else c
    if op == "yflip":
        return np.array([c[0], -c[1]]) if lab[1] == 1 else c
    if op == "scale":  # zoom in by s = 2^(w scale_std)
        return 2 ** (lab[2] * 0.2) * c
    if op == "rotate_frac":  # G = R(theta) maps output to input: the image turns by -theta (y down)
        cos, sin = lab[3] + 1, lab[4]
        return np.array([[cos, sin], [-sin, cos]]) @ c
    if op == "aniso":  # r = 0: labels (w, 0), stretch x by a = 2^(w aniso_std), squeeze y by 1/a
        a = 2 ** (lab[5] * 0.2)
        return np.array([a * c[0], c[1] / a])
    if op == "translate_frac":  # the image moves by +t translate_frac_std (W, H)
        return c + lab[7:9] * BLOB_N * 0.125
    raise AssertionError(op)


@pytest.mark.parametrize("op", ["xflip", "yflip", "scale", "rotate_frac", "aniso", "translate_frac"])
def test_each_op_moves_a_blob_as_its_label_says(op):
    x = _blob_batch()
    pipe = AugmentPipe(p=1.0, **{**OFF, op: 1.0}, aniso_rotate_prob=0.0)
    y, labels = pipe(x, _g(11))
    lab = labels.double().numpy()
    moved = 0
    for b in range(x.shape[0]):
        want, got = _predicted(op, lab[b], BLOB_C), _centroid(y[b, 0])
        np.testing.assert_allclose(got, want, atol=0.1, err_msg=f"{op}, sample {b}, label {lab[b].round(3)}")
        moved += int(np.abs(want - BLOB_C).max() > 0.5)  # a change the tolerance cannot hide
    assert moved >= 4, f"{op}: too few samples moved far enough to test the label ({moved})"
    if op == "yflip":  # blitting is exact: top-bottom mirror (dim 2) iff the label says so
        flipped = labels[:, 1] == 1
        assert torch.equal(y[flipped], x[flipped].flip(2)) and torch.equal(y[~flipped], x[~flipped])


def test_rotated_aniso_stretches_along_the_labelled_axis():
    """Labels (w cos r, w sin r): the stretch axis is (cos r, -sin r) in y-down pixels (angle r counter-clockwise
    on screen). The factor is 2^(+-|w| aniso_std): EDM's labels are the same for (w, r) and (-w, r + pi), which is
    the inverse stretch about the same axis, so only the axis (and |w|) is pinned here; r = 0 pins the sign above."""
    x = _blob_batch()
    y, labels = AugmentPipe(p=1.0, **{**OFF, "aniso": 1.0}, aniso_rotate_prob=1.0)(x, _g(12))
    lab = labels.double().numpy()
    tested = 0
    for b in range(x.shape[0]):
        w, phi = np.hypot(lab[b, 5], lab[b, 6]), np.arctan2(lab[b, 6], lab[b, 5])
        u, v = np.array([np.cos(phi), -np.sin(phi)]), np.array([np.sin(phi), np.cos(phi)])  # axis, across
        a = 2 ** (w * 0.2)
        readings = [k * (BLOB_C @ u) * u + (BLOB_C @ v) / k * v for k in (a, 1 / a)]
        err = min(np.abs(_centroid(y[b, 0]) - want).max() for want in readings)
        assert err < 0.1, f"sample {b}: labels {lab[b, 5:7]} do not match the blob's stretch (off by {err:.3f} px)"
        tested += int(w > 0.3 and abs(np.sin(2 * phi)) > 0.3)  # an axis off the pixel grid, a clear stretch
    assert tested >= 3


def test_all_ops_compose_in_documented_order():
    """Flips first, then out(q) = in(G q) with G = S(1/s) R(theta) S(1/a, a) T(-t) (r = 0), rebuilt from labels."""
    x = _blob_batch()
    pipe = AugmentPipe(p=1.0, xflip=1e8, yflip=1.0, scale=1.0, rotate_frac=1.0, aniso=1.0, translate_frac=1.0,
                       scale_std=0.1, aniso_std=0.1, translate_frac_std=0.05, aniso_rotate_prob=0.0)
    y, labels = pipe(x, _g(13))
    for b, lab in enumerate(labels.double().numpy()):
        c = np.array([-BLOB_C[0] if lab[0] == 1 else BLOB_C[0], -BLOB_C[1] if lab[1] == 1 else BLOB_C[1]])
        s, a, theta = 2 ** (lab[2] * 0.1), 2 ** (lab[5] * 0.1), np.arctan2(lab[4], lab[3] + 1)
        R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        G = np.diag([1 / s, 1 / s]) @ R @ np.diag([1 / a, a])  # linear part; then T(-t): q -> q - t
        want = np.linalg.solve(G, c) + lab[7:9] * BLOB_N * 0.05  # G^-1 c, shifted by +t
        np.testing.assert_allclose(_centroid(y[b, 0]), want, atol=0.1, err_msg=f"sample {b}, label {lab.round(3)}")
