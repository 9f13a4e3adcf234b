"""Improved precision and recall (Kynkäänniemi et al. 2019) on pool3 features, k = 3.

Each set's manifold is the union of balls around its points, the radius of a point being the distance
to its k-th nearest neighbour in the same set (the point itself not counted). Precision: the share of
generated points inside the real manifold; recall: the share of real points inside the generated
manifold. "Inside" is distance ≤ radius, as in the paper's code and torch-fidelity. Distances are
computed in float64, in blocks, on the evaluation device.
"""

from __future__ import annotations

import numpy as np

K = 3


def _pairwise(a, b):
    import torch

    return torch.cdist(a, b)  # float64, so the matrix-product form loses nothing that matters


def knn_radii(x, k: int = K, block: int = 1024):
    """Distance from every row of ``x`` to its k-th nearest other row."""
    import torch

    out = []
    for chunk in x.split(block):
        out.append(torch.kthvalue(_pairwise(chunk, x), k + 1, dim=1).values)  # +1: the zero self-distance
    return torch.cat(out)


def coverage(points, centres, radii, block: int = 1024) -> float:
    """Share of ``points`` within ``radii`` of at least one of ``centres``."""
    inside = 0
    for chunk in points.split(block):
        inside += int((_pairwise(chunk, centres) <= radii.unsqueeze(0)).any(dim=1).sum())
    return inside / len(points)


def precision_recall(gen: np.ndarray, real: np.ndarray, k: int = K, device="cpu") -> tuple[float, float]:
    import torch

    if len(gen) <= k or len(real) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} generated and real images")
    g = torch.as_tensor(np.asarray(gen, np.float64), device=device)
    r = torch.as_tensor(np.asarray(real, np.float64), device=device)
    precision = coverage(g, r, knn_radii(r, k))
    recall = coverage(r, g, knn_radii(g, k))
    return precision, recall
