"""The prepared-dataset format: ``images.npy`` (uint8 N×3×S×S) + ``meta.json``.

This module is the single definition of that contract. ``prepare`` writes it,
``train``/``evaluate`` read it. A dataset is *complete* only when ``meta.json``
exists and says ``"complete": true``; it is written last, atomically, so a
half-written dataset is never mistaken for a finished one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sagan_cli import __version__
from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import atomic_open, atomic_write_json

IMAGES = "images.npy"
META = "meta.json"
FORMAT = "sagan-dataset"
FORMAT_VERSION = 1


class Fingerprinter:
    """Streaming content fingerprint of a dataset: sha256 over shape and pixel bytes."""

    def __init__(self, shape: tuple[int, ...]):
        self._h = hashlib.sha256()
        self._h.update(json.dumps(list(shape)).encode())

    def update(self, chunk: np.ndarray) -> None:
        self._h.update(np.ascontiguousarray(chunk, dtype=np.uint8).data)

    def hexdigest(self) -> str:
        return "sha256:" + self._h.hexdigest()[:32]


def fingerprint_array(images: np.ndarray, chunk: int = 1024) -> str:
    fp = Fingerprinter(images.shape)
    for i in range(0, len(images), chunk):
        fp.update(images[i : i + chunk])
    return fp.hexdigest()


def base_meta(**fields) -> dict:
    """The keys every meta.json carries; callers add source-specific ones."""
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "skipped": [],
        "skipped_count": 0,
        "complete": True,
    }
    meta.update(fields)
    return meta


def write_meta(directory: str | Path, meta: dict) -> None:
    atomic_write_json(Path(directory) / META, meta)


def save_dataset(directory: str | Path, images: np.ndarray, **meta_fields) -> dict:
    """Write a small in-memory dataset in one go (tests, tiny synthetic sets).

    Large datasets are streamed into a memmap by ``prepare`` instead; both end
    with the same two files.
    """
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be N×3×S×S uint8, got shape {images.shape}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_open(directory / IMAGES) as fh:
        np.save(fh, images, allow_pickle=False)
    meta = base_meta(
        count=int(images.shape[0]),
        imsize=int(images.shape[2]),
        fingerprint=fingerprint_array(images),
        **meta_fields,
    )
    write_meta(directory, meta)
    return meta


@dataclass
class PreparedDataset:
    path: Path
    images: np.ndarray  # read-only memmap, N×3×S×S uint8
    meta: dict

    @property
    def imsize(self) -> int:
        return int(self.images.shape[2])

    @property
    def fingerprint(self) -> str:
        return str(self.meta.get("fingerprint", ""))

    def __len__(self) -> int:
        return int(self.images.shape[0])


def read_meta(directory: Path) -> dict | None:
    try:
        meta = json.loads((directory / META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def refuse_pickled(path: Path) -> None:
    """An ``.npy`` whose header declares Python objects is a pickle: refuse it by its header, unread.
    (``np.load(allow_pickle=False)`` would refuse it too; this says what the file is.)"""
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                dtype = np.lib.format.read_array_header_1_0(fh)[2]
            elif version == (2, 0):
                dtype = np.lib.format.read_array_header_2_0(fh)[2]
            else:
                return  # np.load decides
        except ValueError:
            return  # not an .npy at all: np.load says so
    if dtype.hasobject:
        raise SaganError(f"{path} holds pickled Python objects, not uint8 images; refusing to load it")


def open_dataset(directory: str | Path, imsize: int | None = None) -> PreparedDataset:
    """Open and validate a prepared dataset; every problem is a one-line SaganError."""
    directory = Path(directory)
    if not directory.exists():
        raise SaganError(f"dataset directory not found: {directory}")
    if not directory.is_dir():
        raise SaganError(f"--data must be a prepared dataset directory, got a file: {directory}")
    meta_path = directory / META
    if not meta_path.exists():
        raise SaganError(
            f"{directory} is not a complete prepared dataset (no {META}); "
            "run `sagan prepare ...` (again) to finish it"
        )
    meta = read_meta(directory)
    if meta is None or meta.get("format") != FORMAT:
        raise SaganError(f"{meta_path} is not a sagan dataset description (corrupt or foreign file)")
    if not meta.get("complete"):
        raise SaganError(f"{directory} is an incomplete dataset; re-run the same `sagan prepare` command to finish it")
    try:
        refuse_pickled(directory / IMAGES)
        images = np.load(directory / IMAGES, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise SaganError(f"{directory} has no {IMAGES}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise SaganError(f"{directory / IMAGES} is corrupt or truncated ({exc})") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise SaganError(
            f"{directory / IMAGES} has shape {images.shape} and dtype {images.dtype}; expected uint8 N×3×S×S"
        )
    if images.shape[0] != meta.get("count") or images.shape[2] != meta.get("imsize"):
        raise SaganError(f"{directory}: {IMAGES} does not match {META} (count/imsize differ); re-prepare it")
    if images.shape[0] == 0:
        raise SaganError(f"dataset {directory} is empty")
    if imsize is not None and images.shape[2] != imsize:
        raise SaganError(
            f"dataset {directory} holds {images.shape[2]}px images but --imsize is {imsize}; "
            f"prepare it with --imsize {imsize} or train with --imsize {images.shape[2]}"
        )
    return PreparedDataset(directory, images, meta)


def find_latest_dataset(root: str | Path, imsize: int) -> Path:
    """The most recently prepared complete dataset under ``root`` with image size ``imsize``."""
    root = Path(root)
    found = []
    if root.is_dir():
        for meta_path in root.glob(f"*/{META}"):
            meta = read_meta(meta_path.parent)
            if meta and meta.get("format") == FORMAT and meta.get("complete") and meta.get("imsize") == imsize:
                found.append((meta_path.stat().st_mtime, meta_path.parent))
    if not found:
        raise SaganError(
            f"no prepared {imsize}px dataset under {root}/; run `sagan prepare synthetic --imsize {imsize}` "
            "(or `sagan prepare lsun ...`) first, or pass --data DIR"
        )
    return max(found)[1]
