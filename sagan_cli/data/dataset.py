"""The prepared-dataset format: ``images.npy`` (uint8 N×3×S×S), optionally ``labels.npy`` (int64 N), + ``meta.json``.

This module is the single definition of that contract. ``prepare`` writes it,
``train``/``evaluate`` read it. A dataset is *complete* only when ``meta.json``
exists and says ``"complete": true``; it is written last, atomically, so a
half-written dataset is never mistaken for a finished one.

Format 2 added labels: a labelled dataset's meta.json names its ``classes`` (class id = index) with
``class_counts``, and ``labels.npy`` holds one class id per image; its fingerprint covers the labels
and class names too. A dataset without ``classes`` is unlabelled, in format 2 as in format 1 (which
is still read, and whose fingerprints are unchanged).
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
LABELS = "labels.npy"
META = "meta.json"
FORMAT = "sagan-dataset"
FORMAT_VERSION = 2  # 2: labels.npy and classes (format 1 datasets are read as unlabelled)


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


def with_labels(image_fingerprint: str, labels: np.ndarray | None, classes: list[str] | None) -> str:
    """A labelled dataset's fingerprint: its images' fingerprint, its labels and its class names, hashed
    together. Unlabelled (``labels`` None): the images' fingerprint as it is (format 1's value)."""
    if labels is None:
        return image_fingerprint
    h = hashlib.sha256(b"sagan-labels\0" + image_fingerprint.encode())
    h.update(json.dumps(list(classes or [])).encode())
    h.update(np.ascontiguousarray(labels, dtype="<i8").data)
    return "sha256:" + h.hexdigest()[:32]


def class_fields(labels: np.ndarray, classes: list[str]) -> dict:
    """The meta.json fields of a labelled dataset: class names and images per class."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))[: len(classes)]
    return {"classes": list(classes), "num_classes": len(classes), "class_counts": [int(c) for c in counts]}


def save_labels(path: Path, labels: np.ndarray) -> None:
    with atomic_open(path) as fh:
        np.save(fh, np.ascontiguousarray(labels, dtype=np.int64), allow_pickle=False)


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


def save_dataset(directory: str | Path, images: np.ndarray, labels=None, classes: list[str] | None = None,
                 **meta_fields) -> dict:
    """Write a small in-memory dataset in one go (tests, tiny synthetic sets); ``labels`` (one class id
    per image) with ``classes`` (their names) make it labelled.

    Large datasets are streamed into a memmap by ``prepare`` instead; both end
    with the same files.
    """
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
        raise ValueError(f"images must be N×3×S×S uint8, got shape {images.shape}")
    if (labels is None) != (classes is None):
        raise ValueError("labels and classes go together")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if labels is not None:
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        save_labels(directory / LABELS, labels)
        meta_fields = {**class_fields(labels, classes), **meta_fields}
    with atomic_open(directory / IMAGES) as fh:
        np.save(fh, images, allow_pickle=False)
    meta = base_meta(
        count=int(images.shape[0]),
        imsize=int(images.shape[2]),
        fingerprint=with_labels(fingerprint_array(images), labels, classes),
        **meta_fields,
    )
    write_meta(directory, meta)
    return meta


@dataclass
class PreparedDataset:
    path: Path
    images: np.ndarray  # read-only memmap, N×3×S×S uint8
    meta: dict
    labels: np.ndarray | None = None  # read-only memmap, N int64 class ids; None: unlabelled

    @property
    def imsize(self) -> int:
        return int(self.images.shape[2])

    @property
    def classes(self) -> list[str] | None:
        """Class names (class id = index), or None for an unlabelled dataset."""
        return list(self.meta["classes"]) if self.labels is not None else None

    @property
    def num_classes(self) -> int:
        """Number of classes; 0 for an unlabelled dataset."""
        return len(self.meta["classes"]) if self.labels is not None else 0

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


def refuse_pickled(path: Path, what: str = "uint8 images") -> None:
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
        raise SaganError(f"{path} holds pickled Python objects, not {what}; refusing to load it")


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
    if isinstance(meta.get("format_version"), int) and meta["format_version"] > FORMAT_VERSION:
        raise SaganError(f"{directory} was prepared by a newer sagan (dataset format {meta['format_version']}); upgrade sagan")
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
    return PreparedDataset(directory, images, meta, open_labels(directory, meta, len(images)))


def open_labels(directory: Path, meta: dict, count: int) -> np.ndarray | None:
    """The dataset's labels (a read-only memmap), None when it has none; checked against the images."""
    path = directory / LABELS
    classes = meta.get("classes")
    if classes is None:
        if path.exists():
            raise SaganError(f"{directory} has a {LABELS} but its {META} names no classes; re-prepare it")
        return None
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise SaganError(f"{directory / META}: 'classes' must be a non-empty list of class names; re-prepare it")
    try:
        refuse_pickled(path, "int64 labels")
        labels = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise SaganError(f"{directory} is a labelled dataset ({len(classes)} classes) but has no {LABELS}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise SaganError(f"{path} is corrupt or truncated ({exc})") from None
    if labels.dtype != np.int64 or labels.ndim != 1:
        raise SaganError(f"{path} has shape {labels.shape} and dtype {labels.dtype}; expected int64 N")
    if len(labels) != count:
        raise SaganError(f"{directory}: {LABELS} holds {len(labels)} labels but {IMAGES} {count} images; re-prepare it")
    lo, hi = (int(labels.min()), int(labels.max())) if len(labels) else (0, 0)
    if lo < 0 or hi >= len(classes):
        bad = lo if lo < 0 else hi
        raise SaganError(f"{path} holds class id {bad}, outside 0..{len(classes) - 1} "
                         f"(the {len(classes)} classes of {META}); re-prepare it")
    return labels


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
