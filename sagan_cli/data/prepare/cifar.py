"""`sagan prepare cifar10`: CIFAR-10 from its *binary* archive (cifar-10-binary.tar.gz), labelled, 32 px.

The binary version is a plain byte format: each record is one label byte (0-9) and 3072 bytes of
pixels, the R, G and B planes of a 32×32 image, row by row; ``data_batch_1.bin`` ... ``data_batch_5.bin``
are the train split, ``test_batch.bin`` the test split, ``batches.meta.txt`` the class names, one a line.
The archive is streamed once; only those members, as regular files, are copied out (under fixed names,
into ``<cifar dir>/cifar-10-batches-bin/``), so no member path is ever trusted. The Python version
(cifar-10-python.tar.gz: ``data_batch_N`` and ``batches.meta`` are pickles) is refused by its names,
before anything of it is read as data: nothing is ever unpickled. A download is checked against the
MD5 sum the dataset's page publishes.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

import numpy as np

from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import disk_full, why

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # published on https://www.cs.toronto.edu/~kriz/cifar.html
URL_ENV = "SAGAN_CIFAR10_URL"
ARCHIVE = "cifar-10-binary.tar.gz"
BATCHES = "cifar-10-batches-bin"
META_TXT = "batches.meta.txt"
SPLITS = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE
_PICKLED = re.compile(r"(data_batch_\d+|test_batch|batches\.meta)")  # the Python version's members


def url() -> str:
    return os.environ.get(URL_ENV) or URL


def _pickle_version(what: str) -> SaganError:
    return SaganError(f"{what} is the Python (pickle) version of CIFAR-10, which sagan never unpickles; "
                      f"use the binary version, {ARCHIVE} (or pass --download)")


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def unpack(archive: Path, dest: Path, split: str) -> Path:
    """Copy ``split``'s batch files and the class names out of ``archive`` into ``dest/cifar-10-batches-bin``."""
    archive = Path(archive)
    if not archive.exists():
        raise SaganError(f"--archive {archive}: no such file")
    if not archive.is_file():
        raise SaganError(f"--archive {archive} is not a file")
    if archive.name.startswith("cifar-10-python"):
        raise _pickle_version(f"--archive {archive}")
    if archive.name.startswith("cifar-100"):
        raise SaganError(f"--archive {archive} is CIFAR-100, not CIFAR-10")
    wanted = set(SPLITS[split]) | {META_TXT}
    out = Path(dest) / BATCHES
    found: set[str] = set()
    try:
        with tarfile.open(archive, "r|*") as tf:
            for member in tf:
                path = PurePosixPath(member.name)
                if path.name in wanted | found and member.isfile():
                    _copy_member(tf, member, out, path.name, archive)
                    found.add(path.name)
                elif _PICKLED.fullmatch(path.name) or "cifar-10-batches-py" in path.parts:
                    raise _pickle_version(f"--archive {archive}")
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError) as exc:
        raise SaganError(f"--archive {archive} is not a readable tar archive ({exc})") from None
    except OSError as exc:
        if disk_full(exc):
            raise SaganError(f"disk full while unpacking {archive} into {out}") from None
        raise SaganError(f"cannot unpack {archive} into {out}: {why(exc.filename or out, exc)}") from None
    missing = sorted(wanted - found)
    if missing:
        raise SaganError(f"--archive {archive} holds no {', '.join(missing)}: it is not CIFAR-10's binary version "
                         f"({ARCHIVE})")
    return out


def _copy_member(tf: tarfile.TarFile, member: tarfile.TarInfo, out: Path, name: str, archive: Path) -> None:
    if name.endswith(".bin") and (member.size == 0 or member.size % RECORD):
        raise SaganError(f"--archive {archive}: {member.name} is {member.size} bytes, not a whole number of "
                         f"{RECORD}-byte CIFAR-10 records")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp"
    src = tf.extractfile(member)
    with open(tmp, "wb") as fh:
        while chunk := src.read(1 << 20):
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out / name)


def read_classes(batches: Path) -> list[str]:
    names = [line.strip() for line in (batches / META_TXT).read_text(errors="replace").splitlines() if line.strip()]
    if len(names) != 10:
        raise SaganError(f"{batches / META_TXT} names {len(names)} classes, not CIFAR-10's 10")
    return names


def resolve_archive(archive: Path | None, download: bool, cifar_dir: Path, say: Callable[[str], None]) -> Path:
    """The archive to read: --archive, --download (checked against the published MD5), or an earlier download."""
    if archive is not None and download:
        raise SaganError("--archive and --download conflict: give one source of the CIFAR-10 archive")
    if archive is not None:
        return Path(archive)
    dest = Path(cifar_dir) / ARCHIVE
    if download:
        from sagan_cli.data.prepare.download import download_file

        download_file(url(), dest, say, manual=f"pass --archive {ARCHIVE}")
        if (got := md5_of(dest)) != MD5:
            dest.unlink()
            raise SaganError(f"the downloaded {dest} has MD5 {got}, not the published {MD5} (corrupt or altered); "
                             "it was deleted: re-run to download it again")
        return dest
    if dest.is_file():
        say(f"using {dest} (downloaded earlier)")
        return dest
    raise SaganError(f"no source for CIFAR-10: pass --archive FILE (the binary version, {ARCHIVE}) or --download")


def fetch(files: list, indices: list[int], size: int):
    """The reader (``source.READERS["cifar10"]``): ``files`` is ``[[path, records], ...]`` in split order;
    each index's record as a uint8 3×32×32 array (stored as it is: no decode, no resize)."""
    starts = np.cumsum([0] + [n for _, n in files])
    handles: dict[int, object] = {}
    try:
        for index in indices:
            f = int(np.searchsorted(starts, index, side="right")) - 1
            if f not in handles:
                handles[f] = open(files[f][0], "rb")
            fh = handles[f]
            fh.seek((index - starts[f]) * RECORD + 1)
            data = fh.read(RECORD - 1)
            if len(data) != RECORD - 1:
                yield str(index), OSError(f"{files[f][0]} ends inside record {index - starts[f]}")
                continue
            yield str(index), np.frombuffer(data, np.uint8).reshape(3, SIDE, SIDE)
    finally:
        for fh in handles.values():
            fh.close()


class CifarSource:
    """The records of one split, in file order; items are record indices; labels read from the records."""

    kind = "cifar10"
    chunk_size = 256

    def __init__(self, batches: Path, split: str, archive: Path):
        batches = Path(batches).resolve()
        self.classes = read_classes(batches)
        files = [batches / name for name in SPLITS[split]]
        counts = [f.stat().st_size // RECORD for f in files]
        self.labels = np.concatenate([np.memmap(f, np.uint8, "r")[::RECORD].astype(np.int64) for f in files])
        if len(self.labels) and (bad := int(self.labels.max())) >= len(self.classes):
            raise SaganError(f"--archive {archive}: a record has label {bad}, outside CIFAR-10's 0..9")
        self.count = int(sum(counts))
        self.reader = ("cifar10", [[str(f), n] for f, n in zip(files, counts)])
        self.label = f"CIFAR-10 {split} ({archive})"
        self.identity = {"source": "cifar10", "split": split, "entries": self.count, "classes": self.classes}
        md5 = md5_of(archive)
        self.info = {"source": "cifar10", "category": None, "split": split, "source_path": str(Path(archive).resolve()),
                     "archive_md5": md5, "archive_official": md5 == MD5}

    def __len__(self) -> int:
        return self.count

    def class_of(self, item: int) -> int:
        return int(self.labels[item])

    def position(self, item: int) -> None:
        return None

    def items(self, start: int, position: None = None) -> Iterator[int]:
        return iter(range(start, self.count))
