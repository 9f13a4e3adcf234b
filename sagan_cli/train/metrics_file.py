"""A run's ``metrics.jsonl``: one JSON object a line, written by ``train`` and ``evaluate``, possibly both at once.

Two operations share an exclusive ``flock`` on the file, so an evaluation appended while a resumed run trims
the file is never lost:

* ``append_record`` (``sagan evaluate``): one line in one write, fsynced, starting on a fresh line even when
  the file ends in a record a killed or disk-full run tore;
* ``trim_for_resume`` (``sagan train --resume``): drop the training records logged past the checkpoint the
  run resumes from, and torn lines. The usual case — what goes is the end of the file — is a truncation in
  place, which needs no free space (a resume after a full disk must work on a still-full disk).

The training loop's own appends go through an ``O_APPEND`` handle opened after the trim: each record is a
single short write, which the kernel does not interleave with another process's.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, the operations still work alone
    fcntl = None


@contextlib.contextmanager
def _locked(path: Path, create: bool) -> Iterator[int | None]:
    """An fd of ``path`` (read-write, appending) under an exclusive lock; None if it does not exist and
    ``create`` is false. Retries when the file was replaced while waiting for the lock."""
    flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
    while True:
        try:
            fd = os.open(path, flags, 0o666)
        except FileNotFoundError:
            if create:
                raise
            yield None
            return
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            if same:
                yield fd
                return
        finally:
            os.close(fd)  # also releases the lock


def append_record(path: str | os.PathLike, record: dict) -> Path:
    """Append ``record`` as one line, fsynced, under the lock."""
    path = Path(path)
    line = (json.dumps(record) + "\n").encode()
    with _locked(path, create=True) as fd:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line  # the last record was torn: do not glue this one onto it
        os.write(fd, line)
        os.fsync(fd)
    return path


def _is_training_record(rec) -> bool:
    """A record the training loop wrote (a log step, or an evaluation during training), which a resume
    from an earlier step writes again."""
    return (isinstance(rec, dict) and ("kind" not in rec or rec.get("during_training") is True)
            and isinstance(rec.get("step"), int))


def trim_for_resume(path: str | os.PathLike, start_step: int) -> int:
    """Drop training records with ``step > start_step`` and lines that are not whole JSON records;
    keep evaluation records (``"kind": "eval"``) wherever they are. Returns the number of lines dropped."""
    from sagan_cli.util.fsutil import atomic_write

    path = Path(path)
    with _locked(path, create=False) as fd:
        if fd is None:
            return 0
        raw = os.pread(fd, os.fstat(fd).st_size, 0)
        kept, dropped, kept_bytes, tail_only = [], 0, 0, True
        for line in raw.splitlines(keepends=True):
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            whole = line.endswith(b"\n") and rec is not None
            if not whole or (_is_training_record(rec) and rec["step"] > start_step):
                dropped += 1
            else:
                kept.append(line)
                kept_bytes += len(line)
                tail_only = tail_only and not dropped  # a line kept after a dropped one
        if not dropped:
            return 0
        if tail_only:  # only the end goes: cut it off in place
            os.ftruncate(fd, kept_bytes)
            os.fsync(fd)
        else:  # an evaluation record after dropped lines: rewrite (atomically; others retry on the new file)
            atomic_write(path, lambda fh: fh.write(b"".join(kept)))
        return dropped
