"""``images.npy`` written in place: a fixed-size header, a pre-allocated body, memmap windows.

The file is a standard NPY v1.0 file (``np.load`` reads it) whose header is
always ``HEADER_BYTES`` long, so the row count can be rewritten in place at the
end, when skips have made the dataset shorter than allocated. The body is
reserved up front with ``posix_fallocate`` — a full disk is reported before any
work, and writes through the memory map can never hit a hole (which would be a
SIGBUS, not an error). Rows are written through small memmap windows that are
flushed and unmapped as they fill, so the resident set stays flat.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
from pathlib import Path

import numpy as np

from sagan_cli.data.dataset import Fingerprinter
from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import disk_full

HEADER_BYTES = 128
WINDOW_BYTES = 16 << 20
LABEL_BYTES = 8  # labels.npy: one little-endian int64 per row


def header(rows: int, imsize: int) -> bytes:
    return _header(f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({rows}, 3, {imsize}, {imsize}), }}")


def label_header(rows: int) -> bytes:
    return _header(f"{{'descr': '<i8', 'fortran_order': False, 'shape': ({rows},), }}")


def _header(d: str) -> bytes:
    text = d.ljust(HEADER_BYTES - 10 - 1) + "\n"
    out = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")
    assert len(out) == HEADER_BYTES
    return out


def row_bytes(imsize: int) -> int:
    return 3 * imsize * imsize


def allocate(path: Path, rows: int, imsize: int) -> None:
    """Create (or extend) ``path`` to hold ``rows`` images, reserving the disk space."""
    size = HEADER_BYTES + rows * row_bytes(imsize)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, header(rows, imsize), 0)
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if disk_full(exc):
                free = shutil.disk_usage(path.parent).free
                raise SaganError(f"not enough disk space for {path}: needs {size / 1e9:.2f} GB, "
                                 f"{free / 1e9:.2f} GB free in {path.parent}") from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            # a filesystem without fallocate: check the space, then make a sparse file
            if shutil.disk_usage(path.parent).free < size - os.fstat(fd).st_size:
                raise SaganError(f"not enough disk space for {path}: needs {size / 1e9:.2f} GB") from None
            os.ftruncate(fd, max(size, os.fstat(fd).st_size))
        os.fsync(fd)
    finally:
        os.close(fd)


class RowWriter:
    """Writes consecutive image rows from ``start`` on, through memmap windows of ~16 MB."""

    def __init__(self, path: Path, imsize: int, capacity: int, start: int):
        self.path, self.imsize, self.capacity, self.row = path, imsize, capacity, start
        self._rows_per_window = max(1, WINDOW_BYTES // row_bytes(imsize))
        self._window = None
        self._w0 = start

    def _open_window(self) -> None:
        n = min(self._rows_per_window, self.capacity - self.row)
        self._w0 = self.row
        self._window = np.memmap(self.path, np.uint8, "r+", offset=HEADER_BYTES + self.row * row_bytes(self.imsize),
                                 shape=(n, 3, self.imsize, self.imsize))

    def write(self, images: np.ndarray) -> None:
        i = 0
        while i < len(images):
            if self.row >= self.capacity:
                raise ValueError("more rows than allocated")
            if self._window is None:
                self._open_window()
            at = self.row - self._w0
            n = min(len(images) - i, len(self._window) - at)
            self._window[at : at + n] = images[i : i + n]
            self.row += n
            i += n
            if at + n == len(self._window):
                self.flush()

    def flush(self) -> None:
        """Flush the data written so far to disk (msync) and unmap the window."""
        if self._window is not None:
            self._window.flush()
            self._window = None


def finalise(path: Path, rows: int, imsize: int) -> str:
    """Set the row count to ``rows``, drop the unused tail, sync; returns the content fingerprint.

    Idempotent, so a crash in here is repaired by running it again."""
    size = HEADER_BYTES + rows * row_bytes(imsize)
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, header(rows, imsize), 0)
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return fingerprint_file(path, rows, imsize)


def fingerprint_file(path: Path, rows: int, imsize: int) -> str:
    """Same value as ``dataset.fingerprint_array`` on the loaded array, in bounded memory."""
    fp = Fingerprinter((rows, 3, imsize, imsize))
    buf = bytearray(max(1, WINDOW_BYTES // row_bytes(imsize)) * row_bytes(imsize))
    view = memoryview(buf)
    left = rows * row_bytes(imsize)
    with open(path, "rb", buffering=0) as fh:
        fh.seek(HEADER_BYTES)
        while left:
            n = fh.readinto(view[: min(len(buf), left)])
            if not n:
                raise SaganError(f"{path} is shorter than its header says; re-run with --force")
            fp.update(np.frombuffer(view[:n], np.uint8))
            left -= n
    return fp.hexdigest()


class LabelWriter:
    """``labels.npy`` beside images.npy, written the same way: a fixed header, rows from ``start`` on
    (``pwrite``), made durable by ``flush`` before progress.json claims them, trimmed by ``finalise_labels``.
    Small (8 bytes an image), so no pre-allocation: a re-run overwrites the rows past ``start``."""

    def __init__(self, path: Path, capacity: int, start: int):
        self.path, self.row = path, start
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if start == 0:
            os.pwrite(self._fd, label_header(capacity), 0)

    def write(self, labels: np.ndarray) -> None:
        data = np.ascontiguousarray(labels, dtype="<i8").tobytes()
        os.pwrite(self._fd, data, HEADER_BYTES + self.row * LABEL_BYTES)
        self.row += len(labels)

    def flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def finalise_labels(path: Path, rows: int) -> None:
    """Set labels.npy's row count to ``rows`` and drop the tail, then sync (idempotent, like ``finalise``)."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, label_header(rows), 0)
        os.ftruncate(fd, HEADER_BYTES + rows * LABEL_BYTES)
        os.fsync(fd)
    finally:
        os.close(fd)
