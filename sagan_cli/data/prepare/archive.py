"""Unpack a downloaded LSUN ``*_lmdb.zip`` safely.

Every member is checked before anything is written: absolute paths, ``..``
components, backslashes, drive letters and symlinks are refused, and each target
must resolve inside the destination. Members are streamed to a temporary file
and renamed, so an interrupted extraction never leaves a torn data.mdb; a small
marker records a finished extraction so the next run skips it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import atomic_write_json, disk_full

_CHUNK = 1 << 22


def _unsafe_reason(info: zipfile.ZipInfo, dest: Path) -> str | None:
    name = info.filename
    if not name or "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "an absolute or non-POSIX path"
    if ".." in PurePosixPath(name).parts:
        return "a '..' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        return "a path outside the target directory"
    return None


def check_members(zf: zipfile.ZipFile, dest: Path, zip_path: Path) -> list[zipfile.ZipInfo]:
    members = zf.infolist()
    for info in members:
        reason = _unsafe_reason(info, dest)
        if reason:
            raise SaganError(f"refusing to unpack {zip_path}: member {info.filename!r} is {reason}; "
                             f"nothing was extracted (a genuine LSUN zip holds only <category>_<split>_lmdb/*.mdb)")
    return members


def _marker(dest: Path, zip_path: Path) -> Path:
    return dest / f".{zip_path.name}.extracted.json"


def _zip_identity(zip_path: Path) -> dict:
    st = zip_path.stat()
    return {"zip": str(zip_path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, progress) -> None:
    tmp = target.with_name(f".{target.name}.part")
    try:
        with zf.open(info) as src, open(tmp, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
                progress(len(chunk))
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def extract_lmdb_zip(zip_path: Path, dest: Path, say: Callable[[str], None]) -> Path:
    """Unpack ``zip_path`` into ``dest``; returns the directory that holds data.mdb."""
    from sagan_cli.util.progress import Reporter

    zip_path = Path(zip_path)
    if not zip_path.exists():
        raise SaganError(f"--zip {zip_path}: no such file")
    if not zip_path.is_file():
        raise SaganError(f"--zip {zip_path}: not a file")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SaganError(f"{zip_path} is not a readable zip archive ({exc}); a partial download? re-run with --download") from None
    with zf:
        dest = dest.resolve()
        members = check_members(zf, dest, zip_path)  # before anything, even dest, is created
        data = [m for m in members if PurePosixPath(m.filename).name == "data.mdb" and not m.is_dir()]
        if len(data) != 1:
            raise SaganError(f"{zip_path} is not an LSUN lmdb zip: expected one data.mdb inside, found {len(data)}")
        lmdb_dir = (dest / data[0].filename).parent
        marker = _marker(dest, zip_path)
        try:
            done = json.loads(marker.read_text())
        except (OSError, ValueError):
            done = None
        if done == _zip_identity(zip_path) and (lmdb_dir / "data.mdb").is_file():
            say(f"using {lmdb_dir} (unpacked from {zip_path.name} earlier)")
            return lmdb_dir
        dest.mkdir(parents=True, exist_ok=True)
        files = [m for m in members if not m.is_dir()]
        total = sum(m.file_size for m in files)
        free = shutil.disk_usage(dest).free
        if total > free:
            raise SaganError(f"not enough disk space to unpack {zip_path.name} into {dest}: "
                             f"needs {total / 1e9:.1f} GB, {free / 1e9:.1f} GB free")
        say(f"unpacking {zip_path} into {dest}")
        reporter = Reporter("unpack", total, unit="bytes")
        try:
            for info in members:
                target = dest / info.filename
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                _copy_member(zf, info, target, reporter.advance)
        except zipfile.BadZipFile as exc:
            raise SaganError(f"{zip_path} is corrupt ({exc}); download it again") from None
        except OSError as exc:
            if disk_full(exc):
                raise SaganError(f"disk full while unpacking {zip_path.name} into {dest}") from None
            raise SaganError(f"cannot unpack {zip_path}: {exc.strerror or exc}") from None
        finally:
            reporter.close()
        atomic_write_json(marker, _zip_identity(zip_path))
    return lmdb_dir
