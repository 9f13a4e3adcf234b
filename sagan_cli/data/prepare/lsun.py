"""LSUN scene categories as lmdb databases: find the source (lmdb, zip or download) and list its keys.

An LSUN lmdb maps 40-hex-digit keys to encoded images (JPEG or WebP, short side
256). The parent process only reads keys, in short read transactions; values are
read by the workers (``worker.py``). Nothing — no key cache — is written anywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator

from sagan_cli.util.errors import SaganError

CATEGORIES = ("bedroom", "bridge", "church_outdoor", "classroom", "conference_room",
              "dining_room", "kitchen", "living_room", "restaurant", "tower")
SPLITS = ("train", "val")
DEFAULT_URL_BASE = "http://dl.yf.io/lsun/scenes"
URL_ENV = "SAGAN_LSUN_URL"
_KEY = re.compile(rb"[0-9a-f]{40}")
_KEY_BATCH = 32


def stem(category: str, split: str) -> str:
    return f"{category}_{split}_lmdb"


def url_for(category: str, split: str) -> str:
    base = os.environ.get(URL_ENV) or DEFAULT_URL_BASE
    return f"{base.rstrip('/')}/{stem(category, split)}.zip"


def check_stem(name: str, category: str, split: str, what: str) -> None:
    """Refuse an LSUN lmdb/zip whose standard name says it is another category or split."""
    m = re.fullmatch(r"(\w+?)_(train|val)_lmdb(\.zip)?", name)
    if m and m.group(1) in CATEGORIES and (m.group(1), m.group(2)) != (category, split):
        raise SaganError(f"{what} holds LSUN {m.group(1)} {m.group(2)}, but the command asks for {category} {split}; "
                         f"run `sagan prepare lsun {m.group(1)}{' --split val' if m.group(2) == 'val' else ''} ...`")


def find_lmdb_dir(path: Path, category: str, split: str) -> Path:
    """The directory holding data.mdb: ``path`` itself, its parent if it is data.mdb, or
    ``path/<category>_<split>_lmdb`` (the folder an LSUN zip unpacks to)."""
    if not path.exists():
        raise SaganError(f"--lmdb {path}: no such file or directory")
    if path.is_file():
        if path.name == "data.mdb":
            return path.parent
        raise SaganError(f"--lmdb {path}: expected the unpacked {stem(category, split)}/ directory holding data.mdb")
    for candidate in (path, path / stem(category, split)):
        if (candidate / "data.mdb").is_file():
            check_stem(candidate.resolve().name, category, split, f"--lmdb {path}")
            return candidate
    raise SaganError(f"--lmdb {path}: no data.mdb inside; pass the unpacked {stem(category, split)}/ directory")


def open_lmdb(path: str):
    """Read-only, lock-free: the parent lists keys in short transactions, the workers read values."""
    import lmdb

    return lmdb.open(path, subdir=True, readonly=True, lock=False, readahead=False, meminit=False, max_readers=4)


def fetch(path: str, keys: list[bytes], size: int):
    """The reader (``source.READERS["lmdb"]``): the encoded values of ``keys``, in a worker process.

    The worker opens the lmdb when a chunk needs it and closes it when the chunk is done (about 40 µs):
    py-lmdb and the kernel map far more of the file than the values read, and unmapping after each
    chunk keeps the resident set flat however large the database."""
    env = open_lmdb(path)
    try:
        with env.begin(buffers=False) as txn:
            for key in keys:
                yield key.decode("ascii", "replace"), txn.get(key)
    finally:
        env.close()


class LmdbSource:
    """The entries of an LSUN lmdb, in key order; items are keys (bytes)."""

    kind = "lsun"
    chunk_size = 32

    def __init__(self, directory: Path, category: str, split: str):
        self.directory = Path(directory).resolve()
        self.category, self.split = category, split
        self.count = self._validate()
        self.reader = ("lmdb", str(self.directory))
        self.label = f"LSUN {category} {split} ({self.directory})"
        self.identity = {"source": "lsun", "category": category, "split": split, "entries": self.count}
        self.info = {"source": "lsun", "category": category, "split": split, "source_path": str(self.directory)}

    def _validate(self) -> int:
        import lmdb


        where = self.directory / "data.mdb"
        try:
            env = open_lmdb(str(self.directory))
        except lmdb.Error as exc:
            raise SaganError(f"{where} is not a readable lmdb database ({' '.join(str(exc).split())})") from None
        try:
            entries = env.stat()["entries"]
            with env.begin() as txn:
                keys = [k for k, _ in zip(txn.cursor().iternext(keys=True, values=False), range(8))]
        finally:
            env.close()
        if entries == 0:
            raise SaganError(f"{where} is an empty lmdb database, not an LSUN category")
        for key in keys:
            if not _KEY.fullmatch(key):
                raise SaganError(f"{where} is not an LSUN lmdb: key {key[:60]!r} is not a 40-hex-digit image id")
        return int(entries)

    def __len__(self) -> int:
        return self.count

    def position(self, key: bytes) -> str:
        """Where a resumed run continues: after this key (hex, so any bytes survive JSON)."""
        return key.hex()

    def items(self, start: int, position: str | None = None) -> Iterator[bytes]:
        """Keys from entry ``start`` on — directly after key ``position`` when given, so a
        resume does not walk (and, through py-lmdb's value preload, read) the entries
        already done. In batches of ``_KEY_BATCH``, each read with
        the database opened and closed around it: py-lmdb touches each value's pages
        as the cursor moves (so they are in the page cache when a worker reads them),
        and unmapping after every batch keeps this process's memory flat. No handle
        is open between batches — in particular not when worker processes are forked."""

        last: bytes | None = bytes.fromhex(position) if position else None
        to_skip = 0 if position else start
        while True:
            batch: list[bytes] = []
            env = open_lmdb(str(self.directory))
            try:
                with env.begin() as txn:
                    cursor = txn.cursor()
                    more = cursor.set_range(last) if last is not None else cursor.first()
                    if more and last is not None and cursor.key() == last:
                        more = cursor.next()
                    steps = 0
                    while more and steps < _KEY_BATCH:
                        last = cursor.key()
                        if to_skip:
                            to_skip -= 1
                        else:
                            batch.append(last)
                        steps += 1
                        more = cursor.next()
            finally:
                env.close()
            yield from batch
            if not more:
                return


def resolve_lmdb(category: str, split: str, lmdb: Path | None, zip_file: Path | None, download: bool,
                 lsun_dir: Path, say: Callable[[str], None]) -> Path:
    """The lmdb directory to read, from the first source that applies:
    --lmdb, --zip, --download, then what an earlier run left in ``lsun_dir``."""
    from sagan_cli.data.prepare.archive import extract_lmdb_zip

    name = stem(category, split)
    if lmdb is not None:
        return find_lmdb_dir(lmdb, category, split)
    if zip_file is not None:
        check_stem(Path(zip_file).name, category, split, f"--zip {zip_file}")
        lmdb_dir = extract_lmdb_zip(zip_file, lsun_dir, say)
        check_stem(lmdb_dir.name, category, split, f"--zip {zip_file}")
        return lmdb_dir
    if download:
        from sagan_cli.data.prepare.download import download_file

        zip_path = download_file(url_for(category, split), lsun_dir / f"{name}.zip", say)
        return extract_lmdb_zip(zip_path, lsun_dir, say)
    if (lsun_dir / name / "data.mdb").is_file():
        say(f"using {lsun_dir / name} (unpacked earlier)")
        return lsun_dir / name
    if (lsun_dir / f"{name}.zip").is_file():
        return extract_lmdb_zip(lsun_dir / f"{name}.zip", lsun_dir, say)
    raise SaganError(
        f"no source for LSUN {category} {split}: pass --lmdb DIR (the unpacked {name}/), "
        f"--zip FILE (the downloaded {name}.zip) or --download"
    )
