"""What a data source for `sagan prepare` is: the ``Source`` protocol, and the table of readers.

A source lists its entries in the parent process (``items``); the entries' pixels are fetched in the
worker processes by the reader the source names in ``reader = (kind, arg)``: ``READERS[kind](arg,
keys, size)`` yields ``(key, value)`` for each key, in order, where ``value`` is

* encoded image bytes (JPEG, WebP, PNG ...): decoded, cropped and resized by the worker,
* a uint8 3×size×size array: stored as it is (procedural sources render at the target size),
* ``None`` (no such entry) or an ``OSError`` (unreadable): recorded as a skip with its reason.

A reader is given as a function or as ``"module:function"`` (imported in the worker on first use), and
receives plain data only, so nothing holding a handle is ever pickled to a worker. A labelled source also
has ``classes`` (names; class id = index) and ``class_of(item) -> int``, called in the parent for each entry
that became an image (``pipeline.py`` writes labels.npy from them). Adding a source: a
module with its ``Source`` class, its reader here, and its command in ``sagan_cli/cli/prepare.py``
(docs/architecture.md).
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterator, Protocol


class Source(Protocol):
    kind: str
    chunk_size: int  # entries per worker task
    reader: tuple  # (a key of READERS, its plain-data argument)
    label: str  # for messages: "folder photos/", "LSUN bedroom train"
    identity: dict  # what the source is (checked before resuming)
    info: dict  # extra meta.json fields

    def __len__(self) -> int: ...
    def items(self, start: int, position=None) -> Iterator: ...
    def position(self, item): ...  # JSON-able "continue after item", or None to resume by count


READERS: dict[str, str | Callable] = {
    "lmdb": "sagan_cli.data.prepare.lsun:fetch",
    "folder": "sagan_cli.data.prepare.folder:fetch",
    "synthetic": "sagan_cli.data.prepare.synthetic:fetch",
    "classes": "sagan_cli.data.prepare.classes:fetch",
    "cifar10": "sagan_cli.data.prepare.cifar:fetch",
}


def reader_for(kind: str) -> Callable:
    entry = READERS[kind]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    return entry
