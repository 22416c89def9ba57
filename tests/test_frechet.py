"""The Frechet distance against closed forms and scipy on known Gaussians."""

import numpy as np
import pytest
import scipy.linalg

from specreg_lib.metrics import frechet_distance, gaussian_stats


def _spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T + d * np.eye(d) * 0.1


def test_identical_gaussians_have_zero_distance():
    rng = np.random.default_rng(0)
    mu, s = rng.standard_normal(8), _spd(rng, 8)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-9


def test_isotropic_closed_form():
    # N(m1, a^2 I) vs N(m2, b^2 I): |m1 - m2|^2 + d (a - b)^2
    d, a, b = 16, 1.5, 0.5
    m1, m2 = np.zeros(d), np.full(d, 0.25)
    got = frechet_distance(m1, a**2 * np.eye(d), m2, b**2 * np.eye(d))
    assert got == pytest.approx(d * 0.25**2 + d * (a - b) ** 2, rel=1e-12)


def test_matches_the_2_wasserstein_formula_via_scipy():
    # W2^2 = |dmu|^2 + Tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2): the symmetric form, computed independently
    rng = np.random.default_rng(1)
    d = 6
    m1, m2, s1, s2 = rng.standard_normal(d), rng.standard_normal(d), _spd(rng, d), _spd(rng, d)
    r2 = scipy.linalg.sqrtm(s2).real
    ref = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(r2 @ s1 @ r2).real)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(ref, rel=1e-10)
    assert frechet_distance(m2, s2, m1, s1) == pytest.approx(ref, rel=1e-10)


def test_gaussian_stats_and_singular_covariances():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 20))  # fewer samples than dimensions: singular covariance
    mu, s = gaussian_stats(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(s, np.cov(x, rowvar=False))
    d = frechet_distance(mu, s, mu, s)
    assert np.isfinite(d) and abs(d) < 1e-4


@pytest.mark.parametrize("args, match", [
    ((np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), "shape mismatch"),
    ((np.zeros(3), np.eye(3) * np.nan, np.zeros(3), np.eye(3)), "sigma1 contains NaN"),
])
def test_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(*args)


def test_gaussian_stats_bad_input():
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        gaussian_stats(np.zeros(5))
