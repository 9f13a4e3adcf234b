"""Image helpers shared by every command: the image files we read, quantise, tile into a grid, save PNG.

NumPy and torch are imported where used (the command line reads ``IMAGE_SUFFIXES`` for its help)."""

from __future__ import annotations

import math
from pathlib import Path

from sagan_cli.util.fsutil import atomic_open, write_error

# What `prepare folder` and `evaluate --samples` read (Pillow decodes all of them), by file name ending.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff")


def to_uint8(x):
    """Generator output (torch tensor B×3×H×W in [-1, 1]) → uint8 numpy B×H×W×3, rounded."""
    import torch

    with torch.no_grad():
        y = ((x.detach().float().cpu() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def grid(images, nrow: int | None = None, pad: int = 2, fill: int = 255):
    """Tile uint8 B×H×W×C images into one H'×W'×C image, ``nrow`` images per row (default ⌈√B⌉).

    Every cell has ``pad``-px gutters of ``fill`` on all sides, the outer border included; a row is
    always ``nrow`` cells wide (fewer images leave the rest ``fill``), as is a partial last row.
    NumPy, not torchvision's make_grid: the same pixels for train, sample and prepare --preview,
    with no torch import for the preview (docs/decisions.md; tests/test_util_images.py pins it)."""
    import numpy as np

    b, h, w, c = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(b))))
    rows = int(math.ceil(b / nrow))
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), fill, np.uint8)
    for i in range(b):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[y : y + h, x : x + w] = images[i]
    return out


def save_png(image, path: str | Path) -> Path:
    """Write an H×W×3 uint8 array as PNG atomically (parent directories created).

    A write that fails (full disk, read-only or missing folder, a directory in the way)
    is a one-line SaganError, and nothing is left under ``path``."""
    from PIL import Image

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as fh:
            Image.fromarray(image).save(fh, format="PNG")
    except OSError as exc:
        raise write_error(path, exc) from None
    return path
