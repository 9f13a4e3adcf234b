"""Fréchet Inception Distance: Gaussian statistics of pool3 features and the distance between them.

FID = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½        (Heusel et al. 2017)

The trace term equals tr (Σ₁Σ₂)^½ (the two matrices are similar), but computing it from the symmetric
positive semi-definite M = Σ₁^½ Σ₂ Σ₁^½ needs only two symmetric eigen-decompositions: one for
Σ₁^½ and the eigenvalues of M. Round-off can make tiny eigenvalues negative (covariances from fewer
samples than dimensions are singular); they are clipped to 0. No scipy.linalg.sqrtm: it is slow on
2048×2048 and its ``disp`` argument is gone in SciPy ≥ 1.18. Everything is float64.
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


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr (Σ₁^½ Σ₂ Σ₁^½)^½ = tr (Σ₁Σ₂)^½."""
    root = sqrt_psd(sigma1)
    m = _sym(root @ np.asarray(sigma2, np.float64) @ root)
    eig = np.linalg.eigvalsh(m)
    return float(np.sqrt(np.clip(eig, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return float(value)
