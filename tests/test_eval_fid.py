"""Fréchet distance and KID against closed forms and direct computations."""

from __future__ import annotations

import numpy as np
import pytest

from advseg_eval.fid import (
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_lowrank,
    gaussian_stats,
    kid,
    mmd2_unbiased,
    resolve_fd_method,
)


def _random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _closed_form_commuting(mu1, a, mu2, b) -> float:
    """Covariances sharing eigenvectors with eigenvalues a, b: the trace term is sum (sqrt a - sqrt b)²."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


def test_one_dimensional_gaussians():
    # d² = (m1 - m2)² + (s1 - s2)²
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0, rel=1e-12)


def test_diagonal_covariances_match_closed_form():
    rng = np.random.default_rng(0)
    d = 32
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert got == pytest.approx(_closed_form_commuting(mu1, a, mu2, b), rel=1e-10)


def test_commuting_full_covariances_match_closed_form():
    rng = np.random.default_rng(1)
    d = 24
    q = _random_rotation(d, rng)
    a, b = rng.uniform(0.05, 4.0, d), rng.uniform(0.05, 4.0, d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    want = _closed_form_commuting(mu1, a, mu2, b)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)
    # and it is symmetric
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(want, rel=1e-8)


def test_identical_gaussians_are_at_distance_zero():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 16))
    mu, s = gaussian_stats(x)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-8


def test_sampled_gaussians_converge_to_the_analytic_distance():
    rng = np.random.default_rng(3)
    d = 6
    q = _random_rotation(d, rng)
    a, b = rng.uniform(0.5, 2.0, d), rng.uniform(0.5, 2.0, d)
    mu1, mu2 = np.zeros(d), np.full(d, 0.5)
    want = _closed_form_commuting(mu1, a, mu2, b)
    errors = []
    for n in (300, 3000, 60000):
        x = mu1 + (rng.standard_normal((n, d)) * np.sqrt(a)) @ q.T
        y = mu2 + (rng.standard_normal((n, d)) * np.sqrt(b)) @ q.T
        (m1, s1), (m2, s2) = gaussian_stats(x), gaussian_stats(y)
        errors.append(abs(frechet_distance(m1, s1, m2, s2) - want))
    assert errors[-1] < errors[0]
    assert errors[-1] < 0.01 * want + 0.01, (errors, want)


@pytest.mark.parametrize("n1,n2,d", [(12, 30, 48), (80, 90, 16)])
def test_lowrank_equals_sqrtm(n1, n2, d):
    """The exact low-rank trace identity agrees with scipy sqrtm, for small and large sets."""
    rng = np.random.default_rng(n1 + d)
    x = rng.normal(size=(n1, d)) @ rng.normal(size=(d, d)) * 0.3
    y = rng.normal(size=(n2, d)) + 0.2
    (m1, s1), (m2, s2) = gaussian_stats(x), gaussian_stats(y)
    ref = frechet_distance(m1, s1, m2, s2)
    low = frechet_distance_lowrank(m1, x, m2, s2)
    assert low == pytest.approx(ref, rel=1e-6, abs=1e-6)
    assert resolve_fd_method("auto", min(n1, n2), d) == ("lowrank" if min(n1, n2) <= d else "sqrtm")
    # dispatcher: every method agrees
    for method in ("auto", "sqrtm", "lowrank"):
        assert frechet_distance_from_features(x, (m1, s1), y, (m2, s2), method=method) == pytest.approx(ref, rel=1e-6)


def test_lowrank_self_distance_is_zero_for_rank_deficient_sets():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(10, 512))  # n << d: covariance has rank 9
    mu, s = gaussian_stats(x)
    assert abs(frechet_distance_lowrank(mu, x, mu, s)) < 1e-9 * np.trace(s)


def test_mismatched_statistics_are_refused():
    with pytest.raises(ValueError, match="mismatched statistics"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="N>=2"):
        gaussian_stats(np.zeros((1, 5)))


# --------------------------------------------------------------------------- KID


def _mmd2_direct(x: np.ndarray, y: np.ndarray) -> float:
    """O(n²) loops over pairs with k(a, b) = (a·b / d + 1)³; unbiased (no diagonal terms)."""
    d = x.shape[1]

    def k(a, b):
        return (sum(float(p) * float(q) for p, q in zip(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_mmd2_matches_direct_computation_with_unequal_sizes():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(12, 7)), rng.normal(0.4, 1.2, size=(9, 7))
    assert mmd2_unbiased(x, y) == pytest.approx(_mmd2_direct(x, y), rel=1e-10)


def test_kid_with_one_full_subset_is_the_direct_mmd():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(15, 5)), rng.normal(0.3, 1.0, size=(15, 5))
    res = kid(x, y, num_subsets=1, subset_size=1000)  # subset = whole set (clamped to 15)
    assert res.subset_size == 15
    assert res.mean == pytest.approx(_mmd2_direct(x, y), rel=1e-10)
    assert res.std == 0.0
    assert kid(x, y, num_subsets=50).num_subsets == 1  # whole sets: one exact evaluation


def test_kid_subsets_are_seeded_and_separate_distributions():
    rng = np.random.default_rng(7)
    same_a, same_b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    shifted = rng.normal(0.5, 1.0, size=(400, 8))
    r1 = kid(same_a, same_b, num_subsets=20, subset_size=100, seed=1)
    r2 = kid(same_a, same_b, num_subsets=20, subset_size=100, seed=1)
    assert r1 == r2
    far = kid(same_a, shifted, num_subsets=20, subset_size=100, seed=1)
    assert far.mean > 5 * abs(r1.mean) and far.mean > 3 * far.std


def test_kid_needs_two_samples():
    with pytest.raises(ValueError, match=">= 2 images"):
        kid(np.zeros((1, 3)), np.zeros((5, 3)))
