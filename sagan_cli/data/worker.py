"""What runs in the worker processes: fetch a chunk of entries, decode, crop, resize.

A task is plain data — a reader spec such as ``("lmdb", dir)``, the transform and
a list of keys — so nothing with an open handle is ever pickled. A worker opens an
LSUN lmdb itself, read-only and lock-free, when a chunk needs it, and closes it
when the chunk is done (about 40 µs): py-lmdb and the kernel map far more of the
file than the values read, and unmapping after each chunk keeps the resident set
flat however large the database. Only NumPy, Pillow and lmdb are imported here.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sagan_cli.data.imageops import decode, describe_error, to_square


@dataclass(frozen=True)
class Transform:
    imsize: int
    crop: str = "center"
    resample: str = "lanczos"


def open_lmdb(path: str):
    import lmdb

    return lmdb.open(path, subdir=True, readonly=True, lock=False, readahead=False, meminit=False, max_readers=4)


def worker_init() -> None:
    """Pool initializer: Ctrl-C is the parent's to handle (it saves progress and stops us)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _fetch_lmdb(path: str, keys: list[bytes]):
    env = open_lmdb(path)
    try:
        with env.begin(buffers=False) as txn:
            for key in keys:
                yield key.decode("ascii", "replace"), txn.get(key)
    finally:
        env.close()


def _fetch_files(root: str, names: list[str]):
    for name in names:
        try:
            yield name, (Path(root) / name).read_bytes()
        except OSError as exc:
            yield name, exc


def process_chunk(reader: tuple, transform: Transform, items: list) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
    """Decode ``items`` in order. Returns (the good images stacked, K×3×S×S uint8) and
    skip records ``(position in items, key, reason)`` for the entries that failed."""
    size = transform.imsize
    kind = reader[0]
    out = np.empty((len(items), 3, size, size), np.uint8)
    skips: list[tuple[int, str, str]] = []
    n = 0
    if kind == "synthetic":
        from sagan_cli.data.synthetic import render

        for index in items:
            out[n] = render(reader[1], index, size)
            n += 1
        return out[:n], skips
    fetched = _fetch_lmdb(reader[1], items) if kind == "lmdb" else _fetch_files(reader[1], items)
    for pos, (key, value) in enumerate(fetched):
        if value is None:
            skips.append((pos, key, "missing value"))
            continue
        if isinstance(value, OSError):
            skips.append((pos, key, f"unreadable: {value.strerror or value}"))
            continue
        try:
            out[n] = to_square(decode(value), size, transform.crop, transform.resample)
        except Exception as exc:  # Pillow raises many types for bad data; each one is a skip
            skips.append((pos, key, describe_error(exc)))
            continue
        n += 1
    return out[:n], skips
