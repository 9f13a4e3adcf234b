"""What runs in the worker processes: fetch a chunk of entries, decode, crop, resize.

A task is plain data — a reader spec such as ``("lmdb", dir)``, the transform and
a list of keys — so nothing with an open handle is ever pickled. Each process
opens an LSUN lmdb lazily, read-only and lock-free, the first time it needs it,
and re-opens it after reading ``REMAP_BYTES`` so that the pages it has touched
leave its resident set: memory stays flat however large the database.
Only NumPy, Pillow and lmdb are imported here.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sagan_cli.data.imageops import decode, describe_error, to_square

REMAP_BYTES = 64 << 20


@dataclass(frozen=True)
class Transform:
    imsize: int
    crop: str = "center"
    resample: str = "lanczos"


class _Env:
    def __init__(self, path: str):
        self.path, self.env, self.touched = path, None, 0

    def get(self):
        if self.env is not None and self.touched >= REMAP_BYTES:
            self.close()
        if self.env is None:
            self.env = open_lmdb(self.path)
        return self.env

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
        self.env, self.touched = None, 0


_ENVS: dict[str, _Env] = {}


def open_lmdb(path: str):
    import lmdb

    return lmdb.open(path, subdir=True, readonly=True, lock=False, readahead=False, meminit=False, max_readers=4)


def lmdb_env(path: str) -> _Env:
    """This process's lazily opened handle on the lmdb in directory ``path``."""
    if path not in _ENVS:
        _ENVS[path] = _Env(path)
    return _ENVS[path]


def close_all() -> None:
    for handle in _ENVS.values():
        handle.close()
    _ENVS.clear()


def ignore_sigint() -> None:
    """Pool initializer: Ctrl-C is the parent's to handle (it saves progress and stops us)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _fetch_lmdb(path: str, keys: list[bytes]):
    handle = lmdb_env(path)
    env = handle.get()
    with env.begin(buffers=False) as txn:
        for key in keys:
            value = txn.get(key)
            handle.touched += len(value or b"") + len(key)
            yield key.decode("ascii", "replace"), value


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
