"""The built-in procedural dataset: left↔right mirrored scenes, made in seconds, no download.

Every image is a vertical two-colour gradient with a soft glow along the centre
line, and one to three coloured shapes (disc, rotated square, triangle) placed on
the left half and mirrored onto the right half. Each half predicts the other, so
a generator only gets these right if it models long-range structure — the thing
self-attention is for. Image ``i`` depends only on ``(seed, i)``: the bytes are
the same whatever the worker count or chunking.

With ``--classes K`` (2..12) the dataset is labelled: image ``i`` is of class ``i % K``, and the class
decides the kind of all its shapes (``SHAPES[c % 3]``) and their colour family (a narrow hue band,
``FAMILIES[c % 4]``), so the 12 (shape, colour) pairs are all different and K=3 gives red discs, green
squares and blue triangles. The background, sizes, places and counts are drawn as without classes;
without ``--classes`` the bytes are exactly those of the unlabelled dataset.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

SHAPES = ("disc", "square", "triangle")
FAMILIES = (("red", 0.0), ("green", 0.33), ("blue", 0.62), ("yellow", 0.14))  # (name, centre hue)
MAX_CLASSES = len(SHAPES) * len(FAMILIES)  # 3 and 4 are coprime: class c <-> (c % 3, c % 4)
HUE_BAND = 0.06


def class_names(classes: int) -> list[str]:
    """``["disc-red", "square-green", ...]``: the names of the first ``classes`` classes."""
    return [f"{SHAPES[c % len(SHAPES)]}-{FAMILIES[c % len(FAMILIES)][0]}" for c in range(classes)]


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


def render(seed: int, index: int, size: int, cls: int | None = None) -> np.ndarray:
    """Scene ``index`` of the dataset with ``seed``, as uint8 3×size×size; of class ``cls`` when given."""
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
        hue, sat, val = rng.uniform(), rng.uniform(0.55, 1.0), rng.uniform(0.7, 1.0)
        if cls is not None:  # the same draws, mapped into the class's shape and colour family
            kind = SHAPES[cls % len(SHAPES)]
            hue = (FAMILIES[cls % len(FAMILIES)][1] + HUE_BAND * (hue - 0.5)) % 1.0
            sat = 0.8 + (sat - 0.55) * (0.2 / 0.45)
        colour = _hsv_to_rgb(hue, sat, val)
        d = _signed_distance(kind, x, y, cx, cy, r, rng.uniform(0, np.pi / 2))
        alpha = np.clip(0.5 - d * size, 0.0, 1.0)  # analytic anti-aliasing: pixel coverage
        shade = 1.0 + 0.25 * np.clip((cy - y) / r, -1.0, 1.0)  # lit from above
        img += alpha[None] * (colour[:, None, None] * shade[None] - img)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def fetch(arg, indices: list[int], size: int):
    """The reader (``source.READERS["synthetic"]``): scenes rendered at the target size, nothing to decode.
    ``arg`` is the seed, or ``[seed, classes]`` for the labelled dataset."""
    seed, classes = (arg, None) if isinstance(arg, int) else arg
    for index in indices:
        yield str(index), render(seed, index, size, None if classes is None else index % classes)


class SyntheticSource:
    """``count`` procedural scenes; items are image indices."""

    kind = "synthetic"
    chunk_size = 128

    def __init__(self, count: int, seed: int, classes: int | None = None):
        self.count, self.seed = count, seed
        self.reader = ("synthetic", seed if classes is None else [seed, classes])
        self.label = f"synthetic scenes (seed {seed})"
        self.identity = {"source": "synthetic", "count": count, "seed": seed}
        self.info = {"source": "synthetic", "category": None, "split": None, "seed": seed}
        self.num_classes = classes
        if classes is not None:
            self.classes = class_names(classes)
            self.identity["classes"] = classes

    def class_of(self, item: int) -> int:
        return item % self.num_classes

    def __len__(self) -> int:
        return self.count

    def position(self, item: int) -> None:
        return None

    def items(self, start: int, position: None = None) -> Iterator[int]:
        return iter(range(start, self.count))
