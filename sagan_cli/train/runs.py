"""The run directory: ``<outdir>/NNNNN-<name>/``, and how a command finds a run's checkpoint.

``train`` creates run directories (the next free index, safe against a concurrent trainer);
``train --resume latest``, ``sample``, ``attn-map`` and ``evaluate`` resolve "latest", a run directory
or a checkpoint path to one checkpoint file; one trainer at a time holds a run (``lock_run``). What a run
holds: docs/train.md.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

from sagan_cli.train.checkpoint import LATEST, newest_checkpoint
from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import why

RUN_RE = re.compile(r"^(\d{5})-")


def run_dirs(outdir: str | Path) -> list[Path]:
    """Run directories under ``outdir``, oldest first (by their NNNNN index)."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        return []
    return sorted((p for p in outdir.iterdir() if p.is_dir() and RUN_RE.match(p.name)), key=lambda p: p.name)


def new_run_dir(outdir: str | Path, name: str) -> Path:
    outdir = Path(outdir)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"
    if outdir.exists() and not outdir.is_dir():
        raise SaganError(f"--runs {outdir} exists and is not a directory")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        while True:
            existing = [int(RUN_RE.match(p.name).group(1)) for p in run_dirs(outdir)]
            path = outdir / f"{(max(existing) + 1) if existing else 0:05d}-{safe}"
            try:
                path.mkdir()
                return path
            except FileExistsError:  # another process took this index
                continue
    except OSError as exc:
        raise SaganError(f"--runs {outdir}: cannot create a run directory there ({why(outdir / safe, exc)})") from None


def latest_checkpoint(outdir: str | Path) -> Path:
    """The newest complete checkpoint of the newest run under ``outdir`` that has one."""
    for run in reversed(run_dirs(outdir)):
        if (run / "checkpoints").is_dir():
            found = newest_checkpoint(run / "checkpoints")
            if found is not None:
                return found
    raise SaganError(f"no checkpoint found under {outdir}/ (looked for */checkpoints/{LATEST}); train first or pass a path")


def resolve_checkpoint_arg(value: str | Path | None, outdir: str | Path = "runs") -> Path:
    """CKPT argument of sample/attn-map/evaluate: a path, a run directory, 'latest' or nothing."""
    if value is None or str(value) == "latest":
        return latest_checkpoint(outdir)
    path = Path(value)
    if path.is_dir() and (path / "checkpoints").is_dir():
        return newest_checkpoint(path / "checkpoints") or path
    return path


def run_dir_of(ckpt_path: Path) -> Path:
    """The run directory a checkpoint file belongs to (``<run>/checkpoints/x.pt``)."""
    ckpt_path = Path(ckpt_path)
    if ckpt_path.parent.name == "checkpoints":
        return ckpt_path.parent.parent
    return ckpt_path.parent


LOCK = ".lock"


class RunLock:
    """An exclusive ``flock`` on ``<run>/.lock``, held while one trainer writes the run. The kernel drops it when
    the process dies however it dies (SIGKILL included), so a crashed trainer never leaves a run locked."""

    def __init__(self, fd: int | None, path: Path, created: bool):
        self.fd, self.path, self.created = fd, path, created

    def release(self, remove: bool = False) -> None:
        """Give the run back; ``remove``: also delete the lock file if this process created it (a run that
        never started leaves nothing behind)."""
        if self.fd is None:
            return
        if remove and self.created:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def lock_run(run_dir: Path) -> RunLock:
    """Take the run for this process, or a one-line error naming the process that has it."""
    path = Path(run_dir) / LOCK
    created = not path.exists()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise SaganError(f"cannot lock the run {run_dir} ({why(path, exc)})") from None
    if fcntl is None:  # pragma: no cover - no flock on this platform: one trainer per run is then up to the user
        return RunLock(fd, path, created)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        finally:
            os.close(fd)
        raise SaganError(f"run {run_dir} is in use by {holder or 'another process'} (a trainer holds its lock); "
                         "wait for it to finish or stop it first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    return RunLock(fd, path, created)
