"""The image-folder reader that `prepare folder` and `evaluate --samples` share: which files of a tree
are images, in which order, and whether one reads as an image — with the reason when it does not.

The rules, in one place: a file is an image by its name's ending (``util.images.IMAGE_SUFFIXES``, any
case); the tree is walked recursively in path-component order, directory symlinks not followed; a
file is read whole and decoded by content with Pillow (``prepare.imageops.decode``); one that cannot
be read or decoded is skipped with a one-line reason (``unreadable: ...``, ``OSError: ...``). Pillow
is imported where used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from sagan_cli.data.prepare.imageops import decode, describe_error, unreadable
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

    return visit(Path(root), "")


def read_file(path: str | Path) -> bytes | OSError:
    """The bytes of ``path``, or the OSError that stopped the read (a skip, not a failure)."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        return exc


def read_rgb(path: str | Path):
    """(the decoded image as RGB, None), or (None, the skip reason) for a file that is no readable image."""
    value = read_file(path)
    if isinstance(value, OSError):
        return None, unreadable(value)
    try:
        img = decode(value)
        return (img if img.mode == "RGB" else img.convert("RGB")), None
    except Exception as exc:  # Pillow raises many types for bad data; each one is a skip
        return None, describe_error(exc)


@dataclass
class Scan:
    """What ``scan`` found: the readable images (relative paths) and their (height, width), the skipped
    ones with their reasons, and how many image files the tree holds (those past the limit are counted,
    not decoded)."""
    names: list[str] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    listed: int = 0


def scan(root: Path, limit: int | None = None) -> Scan:
    """Decode the images under ``root`` in walk order, up to ``limit`` readable ones (all when None)."""
    found = Scan()
    for name in walk_images(root):
        found.listed += 1
        if limit is not None and len(found.names) >= limit:
            continue
        img, reason = read_rgb(Path(root) / name)
        if reason is None:
            found.names.append(name)
            found.sizes.append((img.height, img.width))
        else:
            found.skipped.append((name, reason))
    return found
