"""`sagan prepare folder DIR`: every image file under a directory tree, in a stable order."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from sagan_cli.util.errors import SaganError
from sagan_cli.util.images import IMAGE_SUFFIXES



def walk_images(root: Path) -> Iterator[str]:
    """Relative POSIX paths of image files under ``root``, sorted by path components.

    Files and sub-directories of a directory are visited together in name order
    (``sorted(paths, key=lambda p: p.parts)``): ``a/b.png`` < ``a.png`` < ``b.png``.
    Streams one directory listing at a time; directory symlinks are not followed.
    """

    def visit(directory: Path, prefix: str) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise SaganError(f"cannot list {directory}: {exc.strerror or exc}") from None
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from visit(Path(entry.path), rel + "/")
            elif entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                yield rel

    return visit(root, "")


def fetch(root: str, names: list[str], size: int):
    """The reader (``source.READERS["folder"]``): each file's bytes, or the OSError that stopped it."""
    for name in names:
        try:
            yield name, (Path(root) / name).read_bytes()
        except OSError as exc:
            yield name, exc


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
