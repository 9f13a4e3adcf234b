"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a cubic polynomial kernel.

k(x, y) = (xᵀy / d + 1)³ on pool3 features. The estimate is averaged over ``subsets`` random subsets of
``subset_size`` generated and real features each, drawn without replacement by
``np.random.RandomState(seed).choice`` — generated first, then real, per subset — which is the order
and generator torch-fidelity uses, so with the same seed both draw the same subsets. The reported
spread is the population standard deviation over subsets. Computed in float64.
"""

from __future__ import annotations

import numpy as np

SUBSETS = 100
SUBSET_SIZE = 1000
SEED = 2020


def poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between two equally sized samples (diagonals of K_xx and K_yy left out)."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError("mmd2_unbiased needs two samples of the same size ≥ 2")
    k_xx, k_yy, k_xy = poly_kernel(x, x), poly_kernel(y, y), poly_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(gen: np.ndarray, real: np.ndarray, subsets: int = SUBSETS,
                              subset_size: int = SUBSET_SIZE, seed: int = SEED) -> tuple[float, float]:
    """(mean, std) of MMD² over subsets; the subset size is capped at the smaller sample."""
    size = min(subset_size, len(gen), len(real))
    if size < 2:
        raise ValueError("KID needs at least 2 generated and 2 real images")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        g = gen[rng.choice(len(gen), size, replace=False)].astype(np.float64)
        r = real[rng.choice(len(real), size, replace=False)].astype(np.float64)
        values[i] = mmd2_unbiased(g, r)
    return float(values.mean()), float(values.std())
