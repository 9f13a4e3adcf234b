"""Image helpers shared by train, sample and attn-map: quantise, tile into a grid, save PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sagan_cli.fsutil import atomic_open, write_error


def to_uint8(x) -> np.ndarray:
    """Generator output (torch tensor B×3×H×W in [-1, 1]) → uint8 numpy B×H×W×3, rounded."""
    import torch

    with torch.no_grad():
        y = ((x.detach().float().cpu() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).contiguous().numpy()


def grid(images: np.ndarray, nrow: int | None = None, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile uint8 B×H×W×C images into one H'×W'×C image, ``nrow`` images per row."""
    b, h, w, c = images.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(b))))
    rows = int(math.ceil(b / nrow))
    out = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), fill, np.uint8)
    for i in range(b):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[y : y + h, x : x + w] = images[i]
    return out


def save_png(image: np.ndarray, path: str | Path) -> Path:
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
