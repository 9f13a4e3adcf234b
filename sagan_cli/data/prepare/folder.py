"""`sagan prepare folder DIR`: every image file under a directory tree, in a stable order.

Which files, in which order, and how one is read are ``data/imagefolder.py``'s rules, which
`evaluate --samples` follows too; the decoding (and its skips) happens in the workers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from sagan_cli.data.imagefolder import read_file, walk_images
from sagan_cli.util.errors import SaganError
from sagan_cli.util.images import IMAGE_SUFFIXES


def fetch(root: str, names: list[str], size: int):
    """The reader (``source.READERS["folder"]``): each file's bytes, or the OSError that stopped it."""
    for name in names:
        yield name, read_file(Path(root) / name)


class FolderSource:
    """Image files under ``root``; items are paths relative to it."""

    kind = "folder"
    chunk_size = 32

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        if not root.exists():
            raise SaganError(f"folder not found: {root}")
        if not root.is_dir():
            raise SaganError(f"{root} is not a directory (sagan prepare folder takes a directory of images)")
        self.root = root.resolve()
        self.count = sum(1 for _ in walk_images(self.root))
        if self.count == 0:
            raise SaganError(f"no images ({'/'.join(e[1:] for e in IMAGE_SUFFIXES)}) under {root}")
        self.reader = ("folder", str(self.root))
        self.label = f"folder {root}"
        self.identity = {"source": "folder", "path": str(self.root), "entries": self.count}
        self.info = {"source": "folder", "category": None, "split": None, "source_path": str(self.root)}

    def __len__(self) -> int:
        return self.count

    def position(self, item: str) -> None:
        return None  # resumed by count: re-listing is cheap

    def items(self, start: int, position: None = None) -> Iterator[str]:
        it = walk_images(self.root)
        for _ in range(start):
            next(it, None)
        return it
