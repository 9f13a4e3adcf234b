"""What runs in the worker processes: fetch a chunk of entries, decode, skip the too small, crop, resize.

A task is plain data — a reader spec such as ``("lmdb", dir)`` (``source.READERS``), the
transform and a list of keys — so nothing with an open handle is ever pickled. Only NumPy,
Pillow and what the source's reader needs (lmdb for LSUN) are imported here.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass

import numpy as np

from sagan_cli.data.prepare.imageops import decode, describe_error, to_square, too_small, unreadable
from sagan_cli.data.prepare.source import reader_for


@dataclass(frozen=True)
class Transform:
    imsize: int
    crop: str = "center"
    resample: str = "lanczos"
    min_size: int = 0  # decoded images whose short side is under this are skipped (0: none)


def worker_init() -> None:
    """Pool initializer: Ctrl-C is the parent's to handle (it saves progress and stops us)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def process_chunk(reader: tuple, transform: Transform, items: list) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
    """Decode ``items`` in order. Returns (the good images stacked, K×3×S×S uint8) and
    skip records ``(position in items, key, reason)`` for the entries that failed."""
    size = transform.imsize
    out = np.empty((len(items), 3, size, size), np.uint8)
    skips: list[tuple[int, str, str]] = []
    n = 0
    for pos, (key, value) in enumerate(reader_for(reader[0])(reader[1], items, size)):
        if value is None:
            skips.append((pos, key, "missing value"))
            continue
        if isinstance(value, OSError):
            skips.append((pos, key, unreadable(value)))
            continue
        if isinstance(value, np.ndarray):  # rendered at the target size by the reader
            out[n] = value
            n += 1
            continue
        try:
            img = decode(value)
            reason = too_small(img, transform.min_size)
            if reason is None:
                out[n] = to_square(img, size, transform.crop, transform.resample)
        except Exception as exc:  # Pillow raises many types for bad data; each one is a skip
            reason = describe_error(exc)
        if reason is not None:
            skips.append((pos, key, reason))
            continue
        n += 1
    return out[:n], skips
