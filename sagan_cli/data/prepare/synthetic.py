"""The built-in procedural dataset: left↔right mirrored scenes, made in seconds, no download.

Every image is a vertical two-colour gradient with a soft glow along the centre
line, and one to three coloured shapes (disc, rotated square, triangle) placed on
the left half and mirrored onto the right half. Each half predicts the other, so
a generator only gets these right if it models long-range structure — the thing
self-attention is for. Image ``i`` depends only on ``(seed, i)``: the bytes are
the same whatever the worker count or chunking.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

SHAPES = ("disc", "square", "triangle")


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _signed_distance(kind: str, x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Distance (image widths) to the shape's outline; negative inside."""
    px, py = x - cx, y - cy
    if kind == "disc":
        return np.sqrt(px * px + py * py) - r
    if kind == "square":
        c, s = np.cos(angle), np.sin(angle)
        u, w = px * c + py * s, py * c - px * s
        return np.maximum(np.abs(u), np.abs(w)) - 0.8 * r
    # equilateral triangle, apex up (image y grows downwards), circumradius r
    d = py
    for nx, ny in ((0.8660254, -0.5), (-0.8660254, -0.5)):
        d = np.maximum(d, px * nx + py * ny)
    return d - 0.5 * r


def render(seed: int, index: int, size: int) -> np.ndarray:
    """Scene ``index`` of the dataset with ``seed``, as uint8 3×size×size."""
    rng = np.random.default_rng([seed, index])
    coord = (np.arange(size) + 0.5) / size
    y = coord[:, None]
    x = np.minimum(coord, 1.0 - coord)[None, :]  # folded: column j and size-1-j see the same x
    top, bottom = rng.uniform(0.05, 0.65, size=(2, 3))
    glow = rng.uniform(0.0, 0.25) * np.exp(-(((0.5 - x) / 0.12) ** 2))
    img = top[:, None, None] + (bottom - top)[:, None, None] * y[None] + glow[None]
    img = np.broadcast_to(img, (3, size, size)).copy()
    for _ in range(int(rng.integers(1, 4))):
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        r = rng.uniform(0.06, 0.15)
        cx, cy = rng.uniform(0.06 + r * 0.5, 0.46 - r * 0.5), rng.uniform(0.12 + r, 0.88 - r)
        colour = _hsv_to_rgb(rng.uniform(), rng.uniform(0.55, 1.0), rng.uniform(0.7, 1.0))
        d = _signed_distance(kind, x, y, cx, cy, r, rng.uniform(0, np.pi / 2))
        alpha = np.clip(0.5 - d * size, 0.0, 1.0)  # analytic anti-aliasing: pixel coverage
        shade = 1.0 + 0.25 * np.clip((cy - y) / r, -1.0, 1.0)  # lit from above
        img += alpha[None] * (colour[:, None, None] * shade[None] - img)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def fetch(seed: int, indices: list[int], size: int):
    """The reader (``source.READERS["synthetic"]``): scenes rendered at the target size, nothing to decode."""
    for index in indices:
        yield str(index), render(seed, index, size)


class SyntheticSource:
    """``count`` procedural scenes; items are image indices."""

    kind = "synthetic"
    chunk_size = 128

    def __init__(self, count: int, seed: int):
        self.count, self.seed = count, seed
        self.reader = ("synthetic", seed)
        self.label = f"synthetic scenes (seed {seed})"
        self.identity = {"source": "synthetic", "count": count, "seed": seed}
        self.info = {"source": "synthetic", "category": None, "split": None, "seed": seed}

    def __len__(self) -> int:
        return self.count

    def position(self, item: int) -> None:
        return None

    def items(self, start: int, position: None = None) -> Iterator[int]:
        return iter(range(start, self.count))
