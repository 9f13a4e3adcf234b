"""Image helpers shared by every command: the image files we read, quantise, tile into a grid, save PNG.

NumPy and torch are imported where used (the command line reads ``IMAGE_SUFFIXES`` for its help)."""

from __future__ import annotations

import math
from pathlib import Path

from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import atomic_open, write_error

# What `prepare folder` and `evaluate --samples` read (Pillow decodes all of them), by file name ending.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm", ".tif", ".tiff")

# The image sides of the tool: what `prepare` builds and what `train` (hence `sample`) models are made for.
IMSIZES = (32, 64, 128, 256, 512)
IMSIZES_TEXT = ", ".join(map(str, IMSIZES[:-1])) + f" or {IMSIZES[-1]}"  # for help texts: "32, 64, ... or 512"


def check_imsize(imsize: int) -> int:
    """``imsize`` if it is one of IMSIZES, else the one-line error every command gives."""
    if imsize not in IMSIZES:
        raise SaganError(f"--imsize must be one of {', '.join(map(str, IMSIZES))}, got {imsize}")
    return imsize


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


# Animated outputs (`sample --interpolate K --out walk.gif`, `plot --timelapse grow.gif`), by file name ending.
ANIMATION_SUFFIXES = (".gif", ".webp")
MAX_SCALE = 16  # --scale: nearest-neighbour upscaling factors offered


MAX_OUTPUT_BYTES = 2 << 30  # what an upscaled grid, image set or animation may take in memory


def check_output_size(count: int, height: int, width: int, scale: int, what: str) -> None:
    """A one-line error, before any work, when ``count`` images of height×width upscaled ``scale`` times would
    take more than MAX_OUTPUT_BYTES of memory (``what``: how the message names them and what to lower)."""
    need = count * height * width * scale * scale * 3
    if need > MAX_OUTPUT_BYTES:
        raise SaganError(f"--scale {scale}: {count} {what[0]} of {width}x{height} px, upscaled to {width * scale}x"
                         f"{height * scale}, would take {need / 2**30:.1f} GiB of memory, more than "
                         f"{MAX_OUTPUT_BYTES >> 30} GiB; lower --scale or {what[1]}")


def upscale(images, factor: int):
    """Nearest-neighbour upscaling of uint8 ...×H×W×C images by an integer ``factor`` (each pixel a block)."""
    import numpy as np

    if factor == 1:
        return images
    return np.repeat(np.repeat(images, factor, axis=-3), factor, axis=-2)


def frame_ms(fps: float, kind: str = "GIF") -> int:
    """How long a frame shows, in ms: GIF counts hundredths of a second, WebP milliseconds."""
    return max(1, round(100 / fps)) * 10 if kind == "GIF" else max(1, round(1000 / fps))


def save_animation(frames, path: str | Path, fps: float, flag: str = "") -> Path:
    """Write H×W×3 uint8 ``frames`` as an animation that loops, GIF or WebP by ``path``'s ending, atomically.

    WebP is lossless; GIF has 256 colours a frame (Pillow's adaptive palette), times frames in hundredths of a
    second, and merges a frame identical to the one before it into it (shown twice as long). A failed write
    is a one-line SaganError."""
    from PIL import Image

    path = Path(path)
    kind = {".gif": "GIF", ".webp": "WEBP"}[path.suffix.lower()]
    images = [Image.fromarray(f) for f in frames]
    extra = {"lossless": True, "quality": 100, "method": 4} if kind == "WEBP" else {"optimize": False}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as fh:
            images[0].save(fh, format=kind, save_all=True, append_images=images[1:], loop=0,
                           duration=frame_ms(fps, kind), **extra)
    except OSError as exc:
        raise write_error(path, exc, flag) from None
    return path
