"""Atomic, durable file writes: temp file in the same directory, fsync, rename."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

from sagan_cli.util.errors import SaganError

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: OSError) -> bool:
    return getattr(exc, "errno", None) in _NO_SPACE


def why(path: str | os.PathLike, exc: OSError) -> str:
    """The reason a write under ``path`` failed, in words: a file standing where a folder should be
    is named (the OS only says 'File exists' or 'Not a directory')."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        for parent in Path(path).parents:
            if parent.exists():
                if not parent.is_dir():
                    return f"{parent} is a file, not a directory"
                break
    return exc.strerror or str(exc)


def check_writable(path: str | os.PathLike, flag: str = "") -> None:
    """Raise now the SaganError a later write to ``path`` would end in (a directory in the way, a file
    where a folder should be, a read-only folder), so a command fails before its work, not after
    part of its output is written. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise write_error(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)), flag)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise write_error(path, NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), flag)
            if not os.access(parent, os.W_OK | os.X_OK):
                raise write_error(path, PermissionError(errno.EACCES, os.strerror(errno.EACCES)), flag)
            return


def write_error(path: str | os.PathLike, exc: OSError, flag: str = "") -> SaganError:
    """One line for a failed output write (a full disk, a missing or read-only folder, a directory
    where a file should go). ``atomic_open`` has already removed its temporary file."""
    what = f"{flag} {path}" if flag else str(path)
    if disk_full(exc):
        return SaganError(f"disk full while writing {what}; nothing was written under that name, free some space")
    return SaganError(f"{what}: cannot write it ({why(path, exc)})")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched,
    so a crash or a full disk never leaves a torn file under the final name.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file permissions
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, writer: Callable[[IO], None], mode: str = "wb") -> None:
    with atomic_open(path, mode) as fh:
        writer(fh)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2, sort_keys=True) + "\n"), mode="w")


def atomic_link_or_copy(src: Path, dst: Path) -> None:
    """Point ``dst`` at the content of ``src`` atomically (hard link, else a copy)."""
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            with open(src, "rb") as fin, atomic_open(dst) as fout:
                while chunk := fin.read(1 << 22):
                    fout.write(chunk)
            return
        os.replace(tmp, dst)
    except BaseException:  # an interrupt or an error between link and rename: no stray link left
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(dst.parent)
