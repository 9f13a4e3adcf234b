"""Fréchet Inception Distance: Gaussian statistics of pool3 features and the distance between them.

FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½        (Heusel et al. 2017)

The trace term is tr (Σ₁Σ₂)^½ = Σᵢ √λᵢ with λ the eigenvalues of Σ₁Σ₂. They are computed from a
symmetric positive semi-definite matrix similar to it, RᵀΣ₂R where Σ₁ = R Rᵀ, with one symmetric
eigenvalue problem (``eigvalsh``) instead of scipy.linalg.sqrtm (slow on 2048×2048, and its ``disp``
argument is gone in SciPy ≥ 1.18). R is Σ₁'s Cholesky factor when Σ₁ is positive definite (the usual
case: 50 000 samples of 2048-d features); RᵀΣ₂R is then an orthogonal similarity transform of
Σ₁^½ Σ₂ Σ₁^½, so the eigenvalues are identical, at about half the cost of the symmetric square root
(measured in benchmarks/evaluate_bench.py). When Σ₁ is singular (fewer samples than dimensions)
R = Σ₁^½ from a symmetric eigendecomposition. Round-off can make tiny eigenvalues negative; they are
clipped to 0. Everything is float64.

``frechet_distance_sqrtm`` is the reference path (`sagan evaluate --fid-sqrtm`): the trace term as the
published implementations compute it (TTUR's fid.py, pytorch-fid's ``calculate_frechet_distance``),
tr sqrtm(Σ₁Σ₂) with ``scipy.linalg.sqrtm`` of the non-symmetric product. When that square root is not
finite (a singular product), ε = 1e-6 is added to both diagonals and it is taken again; a complex
result is accepted when the imaginary parts of its diagonal are all within 1e-3 of 0 (numerical
noise) and its real part used, and refused otherwise. Several times slower at 2048-d (see
benchmarks/evaluate_bench.py --sqrtm).
"""

from __future__ import annotations

import numpy as np


def statistics(features: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (ddof=1) in float64, without a float64 copy of all features."""
    n, d = features.shape
    if n < 2:
        raise ValueError("a covariance needs at least 2 samples")
    total = np.zeros(d, np.float64)
    for i in range(0, n, chunk):
        total += features[i : i + chunk].sum(axis=0, dtype=np.float64)
    mu = total / n
    sigma = np.zeros((d, d), np.float64)
    for i in range(0, n, chunk):
        x = features[i : i + chunk].astype(np.float64) - mu
        sigma += x.T @ x
    sigma /= n - 1
    return mu, sigma


def _sym(a: np.ndarray) -> np.ndarray:
    return (a + a.T) * 0.5


def sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues → 0)."""
    w, v = np.linalg.eigh(_sym(np.asarray(sigma, np.float64)))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_from_root(root: np.ndarray, sigma2: np.ndarray) -> float:
    """Σ √λ(Rᵀ Σ₂ R): tr (Σ₁Σ₂)^½ for any R with Σ₁ = R Rᵀ."""
    m = _sym(root.T @ np.asarray(sigma2, np.float64) @ root)
    eig = np.linalg.eigvalsh(m)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr (Σ₁^½ Σ₂ Σ₁^½)^½ = tr (Σ₁Σ₂)^½."""
    sigma1 = _sym(np.asarray(sigma1, np.float64))
    try:
        root = np.linalg.cholesky(sigma1)
    except np.linalg.LinAlgError:  # singular Σ₁
        root = sqrt_psd(sigma1)
    return trace_sqrt_from_root(root, sigma2)


def _float64_statistics(mu1, sigma1, mu2, sigma2):
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    return mu1, sigma1, mu2, sigma2


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    mu1, sigma1, mu2, sigma2 = _float64_statistics(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(value)


# ------------------------------------------------------------------ the reference path: scipy.linalg.sqrtm
SQRTM_EPS = 1e-6  # added to both diagonals when sqrtm(Σ₁Σ₂) is not finite
SQRTM_IMAG_ATOL = 1e-3  # largest |imaginary part| on the diagonal of sqrtm(Σ₁Σ₂) taken for round-off


class ImaginaryComponent(ValueError):
    """sqrtm(Σ₁Σ₂) has an imaginary part that is not round-off (the inputs are not covariances)."""


def _sqrtm(a: np.ndarray, notes: list[str]) -> np.ndarray:
    """scipy.linalg.sqrtm(a); what it says (a LinAlgWarning, or a line printed by SciPy < 1.16) goes to ``notes``."""
    import contextlib
    import io
    import warnings

    import scipy.linalg

    printed = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        root = scipy.linalg.sqrtm(a)
    for text in [str(w.message) for w in caught] + printed.getvalue().splitlines():
        if text.strip() and text.strip() not in notes:
            notes.append(text.strip())
    return root


def trace_sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = SQRTM_EPS,
                        warn=None) -> float:
    """tr sqrtm(Σ₁Σ₂) as pytorch-fid takes it (see the module docstring); ``warn`` hears about the retry."""
    notes: list[str] = []
    root = _sqrtm(sigma1 @ sigma2, notes)
    if not np.isfinite(root).all():
        if warn is not None:
            warn(f"FID by scipy.linalg.sqrtm: the product of the covariances is singular; adding {eps:g} to "
                 "the diagonal of both (as pytorch-fid does)")
        offset = np.eye(sigma1.shape[0]) * eps
        root = _sqrtm((sigma1 + offset) @ (sigma2 + offset), notes)
    if np.iscomplexobj(root):
        imag = np.diagonal(root).imag
        if not np.allclose(imag, 0, atol=SQRTM_IMAG_ATOL):
            raise ImaginaryComponent(f"the square root of the covariance product has an imaginary component of "
                                     f"{np.abs(root.imag).max():.3g} (more than round-off: refused, as pytorch-fid does)")
        root = root.real
    if warn is not None:
        for note in notes:
            warn(f"scipy.linalg.sqrtm: {note}")
    return float(np.trace(root))


def frechet_distance_sqrtm(mu1, sigma1, mu2, sigma2, eps: float = SQRTM_EPS, warn=None) -> float:
    """FID with the trace term from scipy.linalg.sqrtm, as TTUR and pytorch-fid compute it."""
    mu1, sigma1, mu2, sigma2 = _float64_statistics(mu1, sigma1, mu2, sigma2)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrtm_product(sigma1, sigma2, eps, warn)
    return float(value)
