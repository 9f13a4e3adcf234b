"""Decode one encoded image and turn it into a uint8 3×S×S array (crop, then resample); skip reasons.

Kept free of anything but NumPy and Pillow: it runs inside the worker processes. Both are imported
where used, so the command line can read ``CROPS`` and ``RESAMPLES`` (its choices) for nothing.
Pillow decodes too: ``torchvision.io`` gains too little once the LANCZOS resize (the format's) is
counted to pay for importing torch in every worker, and ``Image.draft`` changes the pixels
(docs/decisions.md, measured by benchmarks/decode_bench.py).
"""

from __future__ import annotations

import io
import re

CROPS = ("center", "none")
RESAMPLES = ("lanczos", "bicubic", "box")  # the names of Pillow's filters; LANCZOS is the data format's default
TOO_SMALL = "too small"  # how the skip reasons of --min-size start (the summary counts them apart)


def default_min_size(imsize: int) -> int:
    """``--min-size`` when not given: images whose short side is under half the output side are skipped,
    rather than blown up into blur."""
    return imsize // 2


def _filter(name: str):
    from PIL import Image

    return getattr(Image.Resampling, name.upper())


def decode(buf: bytes):
    """Pillow image from encoded bytes, format detected from the content (JPEG, WebP, PNG...)."""
    from PIL import Image

    img = Image.open(io.BytesIO(buf))
    img.load()  # decode now, so a truncated or corrupt file fails here and not later
    return img


def center_box(width: int, height: int) -> tuple[int, int, int, int]:
    """The centred square of side min(width, height), as a Pillow crop box."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def to_square(img, size: int, crop: str = "center", resample: str = "lanczos"):
    """RGB, centre-crop the short side (``crop='center'``) or keep the whole frame (``'none'``,
    the aspect ratio is then squashed), resize to ``size``×``size``; returns uint8 3×S×S."""
    if img.mode != "RGB":
        img = img.convert("RGB")  # alpha is dropped, palettes and greyscale expanded
    if crop == "center" and img.width != img.height:
        img = img.crop(center_box(img.width, img.height))
    elif crop not in CROPS:
        raise ValueError(f"unknown crop {crop!r}")
    if img.size != (size, size):
        img = img.resize((size, size), _filter(resample))
    import numpy as np

    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def too_small(img, min_size: int) -> str | None:
    """The skip reason of an image whose short side is under ``min_size`` pixels, else None."""
    if min(img.size) >= min_size:
        return None
    return f"{TOO_SMALL}: {img.width}x{img.height}, short side under --min-size {min_size}"


def unreadable(exc: OSError) -> str:
    """The skip reason of an entry whose bytes could not be read (a file's permissions, an I/O error)."""
    return f"unreadable: {exc.strerror or exc}"


def describe_error(exc: BaseException) -> str:
    """A short one-line reason for a skip record, the same on every run (no object addresses)."""
    text = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", " ".join(str(exc).split())) or "no details"
    return f"{type(exc).__name__}: {text}"[:200]
