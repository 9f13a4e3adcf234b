"""Several sources as one labelled source, one class per source (`sagan prepare lsun CAT1 CAT2 ...`).

The parts are read one after the other, in the order given, so class ``c`` is the ``c``-th part and
its entries are consecutive. An item is ``(class id, the part's item)``; the reader
(``source.READERS["classes"]``) hands each run of one part's items to that part's own reader in the
worker, and names an entry ``<class name>/<the part's key>`` in skip records. A resumed run continues
from ``[class id, the part's position]``, or by count where the part resumes by count.
"""

from __future__ import annotations

import itertools
from typing import Iterator

from sagan_cli.data.prepare.source import Source, reader_for


def fetch(parts: list, items: list, size: int):
    """The reader: ``parts`` is ``[[class name, reader kind, reader arg], ...]``, ``items`` ``(class id, item)``."""
    for cls, group in itertools.groupby(items, key=lambda item: item[0]):
        name, kind, arg = parts[cls]
        for key, value in reader_for(kind)(arg, [item for _, item in group], size):
            yield f"{name}/{key}", value


class ClassesSource:
    """``parts``: ``[(class name, source), ...]``, at least two, of one kind."""

    def __init__(self, kind: str, parts: list[tuple[str, Source]], label: str, info: dict):
        self.kind, self.parts, self.label, self.info = kind, parts, label, info
        self.classes = [name for name, _ in parts]
        self.chunk_size = max(source.chunk_size for _, source in parts)
        self.reader = ("classes", [[name, *source.reader] for name, source in parts])
        self.identity = {"source": kind, "classes": self.classes, "parts": [source.identity for _, source in parts]}
        self._offsets = list(itertools.accumulate((len(source) for _, source in parts), initial=0))

    def __len__(self) -> int:
        return self._offsets[-1]

    def class_of(self, item) -> int:
        return item[0]

    def position(self, item):
        return [item[0], self.parts[item[0]][1].position(item[1])]

    def items(self, start: int, position=None) -> Iterator[tuple]:
        if position is not None:
            first, sub_position = int(position[0]), position[1]
        else:
            first = next((c for c in range(len(self.parts)) if start < self._offsets[c + 1]), len(self.parts))
            sub_position = None
        sub_start = max(0, start - self._offsets[first]) if first < len(self.parts) else 0
        for cls in range(first, len(self.parts)):
            for item in self.parts[cls][1].items(sub_start, sub_position):
                yield cls, item
            sub_start, sub_position = 0, None
