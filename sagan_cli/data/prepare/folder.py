"""`sagan prepare folder DIR`: every image file under a directory tree, in a stable order.

Which files, in which order, and how one is read are ``data/imagefolder.py``'s rules, which
`evaluate --samples` follows too; the decoding (and its skips) happens in the workers.

``--labels subdirs``: one class per immediate subfolder that holds images (the ImageNet
``train/n01440764/...`` layout; images deeper down belong to their top subfolder's class), class ids in
sorted name order. Subfolders without images are no class (the command names them); images at the
top level, which belong to no class, are refused, as is a folder with fewer than two classes."""

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

    def __init__(self, root: str | os.PathLike, labels: str | None = None):
        root = Path(root)
        if not root.exists():
            raise SaganError(f"folder not found: {root}")
        if not root.is_dir():
            raise SaganError(f"{root} is not a directory (sagan prepare folder takes a directory of images)")
        self.root = root.resolve()
        per_class: dict[str, int] = {}
        top = [0, None]  # images at the top level: how many, the first
        for name in walk_images(self.root):  # one walk: the count, and the classes when labelled
            head, sep, _ = name.partition("/")
            if sep:
                per_class[head] = per_class.get(head, 0) + 1
            else:
                top = [top[0] + 1, top[1] or name]
        self.count = top[0] + sum(per_class.values())
        if self.count == 0:
            raise SaganError(f"no images ({'/'.join(e[1:] for e in IMAGE_SUFFIXES)}) under {root}")
        self.reader = ("folder", str(self.root))
        self.label = f"folder {root}"
        self.identity = {"source": "folder", "path": str(self.root), "entries": self.count}
        self.info = {"source": "folder", "category": None, "split": None, "source_path": str(self.root)}
        if labels == "subdirs":
            self._subdir_classes(root, per_class, top)

    def _subdir_classes(self, shown: Path, per_class: dict[str, int], top: list) -> None:
        if top[0]:
            raise SaganError(f"{shown} has {top[0]} image{'s' if top[0] != 1 else ''} at its top level "
                             f"(first: {top[1]}), in no class subfolder; with --labels subdirs every image must be "
                             "inside a class subfolder: move or remove them")
        self.classes = sorted(per_class)
        if len(self.classes) < 2:
            raise SaganError(f"--labels subdirs needs at least 2 class subfolders holding images; {shown} has "
                             f"{len(self.classes)}{' (' + self.classes[0] + ')' if self.classes else ''}")
        self.empty = sorted(e.name for e in os.scandir(self.root)
                            if e.is_dir(follow_symlinks=False) and e.name not in per_class)
        self._ids = {name: i for i, name in enumerate(self.classes)}
        self.identity.update(labels="subdirs", classes=self.classes)
        self.info["labels"] = "subdirs"

    def class_of(self, item: str) -> int:
        return self._ids[item.partition("/")[0]]

    def __len__(self) -> int:
        return self.count

    def position(self, item: str) -> None:
        return None  # resumed by count: re-listing is cheap

    def items(self, start: int, position: None = None) -> Iterator[str]:
        it = walk_images(self.root)
        for _ in range(start):
            next(it, None)
        return it
