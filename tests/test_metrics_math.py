"""The metric maths against closed forms, scipy, and toy cases with known answers (no Inception here)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from sagan_cli.metrics.fid import frechet_distance, sqrt_psd, statistics, trace_sqrt_from_root, trace_sqrt_product
from sagan_cli.metrics.isc import inception_score
from sagan_cli.metrics.kid import kernel_inception_distance, mmd2_unbiased, poly_kernel
from sagan_cli.metrics.prc import precision_recall


def random_orthogonal(d: int, rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def spd_from_samples(n: int, d: int, rng, shift: float = 0.0):
    """Mean and covariance of n correlated Gaussian samples in d dims (singular when n ≤ d)."""
    x = rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d)) + shift
    return statistics(x)


def fid_scipy(mu1, s1, mu2, s2) -> float:
    """The classic formula with scipy's general matrix square root (what pytorch-fid does)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


# --------------------------------------------------------------------------- FID, closed forms
def test_equal_covariances_leave_only_the_mean_term():
    rng = np.random.default_rng(1)
    mu1, sigma = spd_from_samples(500, 32, rng)
    mu2 = mu1 + rng.standard_normal(32)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(((mu1 - mu2) ** 2).sum(), rel=1e-9)
    assert abs(frechet_distance(mu1, sigma, mu1, sigma)) < 1e-9 * np.trace(sigma)


def _commuting_case(d, q, rng):
    a, b = rng.uniform(0.0, 3.0, d), rng.uniform(0.0, 3.0, d)
    a[: d // 4] = 0.0  # rank-deficient, as covariances from fewer samples than dimensions are
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    return mu1, q(a), mu2, q(b), expected


def test_commuting_covariances():
    """Σ₁ = Q diag(a) Qᵀ, Σ₂ = Q diag(b) Qᵀ: FID = ‖Δμ‖² + Σ (√aᵢ − √bᵢ)², with zero eigenvalues too."""
    rng = np.random.default_rng(16)
    q = random_orthogonal(16, rng)
    mu1, s1, mu2, s2, expected = _commuting_case(16, lambda e: (q * e) @ q.T, rng)
    # zero eigenvalues come back as ±1e-16, whose square roots are 1e-8: the usual limit of any sqrt method
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7)


def test_commuting_covariances_at_2048_dims():
    """The same at the real pool3 size; Q is a Householder reflection I − 2vvᵀ, so Σ is built in O(d²)."""
    d = 2048
    rng = np.random.default_rng(d)
    v = rng.standard_normal(d)
    v /= np.linalg.norm(v)

    def rotate(e):  # (I − 2vvᵀ) diag(e) (I − 2vvᵀ)
        ev = e * v
        return np.diag(e) - 2 * np.outer(v, ev) - 2 * np.outer(ev, v) + 4 * (v @ ev) * np.outer(v, v)

    mu1, s1, mu2, s2, expected = _commuting_case(d, rotate, rng)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-7, abs=1e-5)


def test_scaled_covariance():
    """Σ₂ = c²Σ₁ → FID = ‖Δμ‖² + (1 − c)² tr Σ₁."""
    rng = np.random.default_rng(2)
    mu1, s1 = spd_from_samples(400, 48, rng)
    mu2 = mu1 + 0.5
    for c in (0.25, 1.0, 3.0):
        expected = ((mu1 - mu2) ** 2).sum() + (1 - c) ** 2 * np.trace(s1)
        assert frechet_distance(mu1, s1, mu2, c * c * s1) == pytest.approx(expected, rel=1e-8)


def test_invariant_to_rotation_and_symmetric():
    rng = np.random.default_rng(3)
    mu1, s1 = spd_from_samples(300, 40, rng)
    mu2, s2 = spd_from_samples(300, 40, rng, shift=0.3)
    q = random_orthogonal(40, rng)
    base = frechet_distance(mu1, s1, mu2, s2)
    assert base > 0
    assert frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T) == pytest.approx(base, rel=1e-9)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(base, rel=1e-9)


# --------------------------------------------------------------------------- FID vs scipy.linalg.sqrtm
@pytest.mark.parametrize("n,d", [(24, 64), (200, 256), (8000, 64), (3000, 256)])
def test_matches_scipy_sqrtm(n, d):
    """Covariances from N < d samples (singular) and N ≫ d samples (well conditioned)."""
    rng = np.random.default_rng(n + d)
    mu1, s1 = spd_from_samples(n, d, rng)
    mu2, s2 = spd_from_samples(n, d, rng, shift=0.2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(fid_scipy(mu1, s1, mu2, s2), rel=1e-6)


# Both are long trials at the real dimension (scipy's sqrtm: 15-30 s a case on 2 cores); the same comparison
# runs by default at 64 and 256 dimensions, singular and not (here and in test_metrics_fid_scipy.py).
@pytest.mark.slow
@pytest.mark.parametrize("n", [1000, 12000])
def test_matches_scipy_sqrtm_at_2048_dims(n):
    """At the real pool3 dimension: N < 2048 samples (singular covariances, as with a small --num-real) and
    N ≫ 2048 (the usual 50 000-sample case, shrunk). scipy's sqrtm takes ~5-10 s per call on 2 cores."""
    rng = np.random.default_rng(n)
    d = 2048
    mu1, s1 = spd_from_samples(n, d, rng)
    mu2, s2 = spd_from_samples(n, d, rng, shift=0.05)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(fid_scipy(mu1, s1, mu2, s2), rel=1e-6)


def test_sqrt_psd_squares_back_and_clips_round_off():
    rng = np.random.default_rng(4)
    _, s = spd_from_samples(10, 30, rng)  # rank ≤ 9: eigenvalues down to -1e-16 from round-off
    assert np.linalg.eigvalsh(s).min() < 1e-12
    r = sqrt_psd(s)
    assert np.isfinite(r).all()
    np.testing.assert_allclose(r @ r, s, atol=1e-10)


def test_cholesky_and_symmetric_square_root_give_the_same_trace():
    """Σ₁ = LLᵀ (Cholesky, the fast path) and Σ₁ = Σ₁^½Σ₁^½ lead to similar matrices: same trace term."""
    rng = np.random.default_rng(11)
    _, s1 = spd_from_samples(500, 64, rng)
    _, s2 = spd_from_samples(500, 64, rng, shift=1.0)
    via_cholesky = trace_sqrt_from_root(np.linalg.cholesky(s1), s2)
    via_sqrt = trace_sqrt_from_root(sqrt_psd(s1), s2)
    assert via_cholesky == pytest.approx(via_sqrt, rel=1e-12)
    assert trace_sqrt_product(s1, s2) == pytest.approx(via_sqrt, rel=1e-12)
    # a singular Σ₁ (rank 9) has no Cholesky factor: the symmetric root takes over
    _, singular = spd_from_samples(10, 64, rng)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(singular)
    assert trace_sqrt_product(singular, s2) == pytest.approx(trace_sqrt_from_root(sqrt_psd(singular), s2), rel=1e-12)


def test_statistics_are_float64_mean_and_unbiased_covariance():
    rng = np.random.default_rng(5)
    feats = rng.standard_normal((1000, 12)).astype(np.float32)
    mu, sigma = statistics(feats, chunk=64)  # chunked accumulation gives np.cov's answer
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, feats.astype(np.float64).mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sigma, np.cov(feats.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-13)


# --------------------------------------------------------------------------- IS
def one_hot_logits(classes, num_classes=1008, margin=200.0):
    logits = np.zeros((len(classes), num_classes))
    logits[np.arange(len(classes)), classes] = margin
    return logits


def test_inception_score_uniform_predictions_is_one():
    mean, std = inception_score(np.zeros((50, 1008)))
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_k_confident_equally_used_classes_is_k():
    # 10 splits of 40 images, each split holding every one of 8 classes 5 times, each image certain.
    logits = one_hot_logits(np.tile(np.arange(8), 50))
    mean, std = inception_score(logits, splits=10, shuffle=False)
    assert mean == pytest.approx(8.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_inception_score_std_is_over_splits_and_population():
    # split 1: all class 0 (IS 1); split 2: classes 0 and 1 (IS 2) → mean 1.5, population std 0.5
    logits = one_hot_logits([0, 0, 0, 0, 0, 1, 0, 1])
    mean, std = inception_score(logits, splits=2, shuffle=False)
    assert mean == pytest.approx(1.5) and std == pytest.approx(0.5)


def test_inception_score_shuffle_is_fixed_and_needs_enough_images():
    logits = np.random.default_rng(6).standard_normal((60, 1008)) * 3
    assert inception_score(logits) == inception_score(logits.copy())
    with pytest.raises(ValueError, match="at least 10"):
        inception_score(logits[:9])


# --------------------------------------------------------------------------- KID
def test_kid_known_value_in_one_dimension():
    """x ≡ 0, y ≡ 1 (d = 1): k_xx = 1, k_yy = 8, k_xy = 1 → MMD² = 1 + 8 − 2 = 7."""
    x, y = np.zeros((20, 1)), np.ones((20, 1))
    assert mmd2_unbiased(x, y) == pytest.approx(7.0)
    mean, std = kernel_inception_distance(x, y, subsets=5, subset_size=10)
    assert mean == pytest.approx(7.0) and std == pytest.approx(0.0, abs=1e-12)


def test_mmd2_matches_a_brute_force_double_sum():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 5)) + 0.5
    k = lambda a, b: (a @ b / 5 + 1) ** 3  # noqa: E731
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    assert poly_kernel(x, y)[2, 3] == pytest.approx(k(x[2], y[3]))


def test_kid_same_distribution_is_near_zero_and_seeded():
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((400, 16)), rng.standard_normal((400, 16))
    far = rng.standard_normal((400, 16)) + 1.0
    same, _ = kernel_inception_distance(a, b, subsets=20, subset_size=100)
    diff, _ = kernel_inception_distance(a, far, subsets=20, subset_size=100)
    assert abs(same) < 0.02 < diff
    assert kernel_inception_distance(a, far, subsets=20, subset_size=100) == (diff, _)
    # the subset size is capped at the smaller set: 30 images → subsets of 30
    assert kernel_inception_distance(a[:30], far[:50], subsets=3)[0] == pytest.approx(
        kernel_inception_distance(a[:30], far[:50], subsets=3, subset_size=30)[0])


# --------------------------------------------------------------------------- precision / recall
def test_precision_recall_identical_sets():
    pts = np.random.default_rng(9).standard_normal((40, 8))
    assert precision_recall(pts, pts.copy()) == (1.0, 1.0)


def test_precision_recall_disjoint_sets():
    pts = np.random.default_rng(10).standard_normal((40, 8))
    assert precision_recall(pts + 100.0, pts) == (0.0, 0.0)


def test_precision_recall_half_of_the_fakes_off_manifold():
    """real = 0..9 on a line; fakes = 0.5..9.5 plus ten points near 100. k = 3 radii are ≤ 3.

    Precision: the 10 fakes in 0.5..9.5 lie within a real ball, the 10 near 100 do not → 0.5.
    Recall: every real point lies within a ball of a fake in 0.5..9.5 → 1.0.
    """
    real = np.arange(10, dtype=np.float64)[:, None]
    fake = np.concatenate([np.arange(10) + 0.5, 100 + np.arange(10) * 0.1])[:, None]
    assert precision_recall(fake, real) == (0.5, 1.0)
    # and with the roles swapped the numbers swap: the real set misses the cluster at 100
    assert precision_recall(real, fake) == (1.0, 0.5)


def test_precision_recall_needs_more_than_k_points():
    with pytest.raises(ValueError, match="k=3"):
        precision_recall(np.zeros((3, 2)), np.zeros((10, 2)))
