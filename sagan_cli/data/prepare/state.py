"""The state of a dataset directory before ``prepare`` writes into it: new, finished,
half-done (resumable) — or something that is not ours and must not be touched."""

from __future__ import annotations

import json
from pathlib import Path

from sagan_cli.data.dataset import FORMAT, IMAGES, LABELS, META, read_meta
from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import atomic_write_json

PROGRESS = "progress.json"
PREVIEW = "preview.png"
PROGRESS_FORMAT = "sagan-prepare-progress"
OURS = (META, PROGRESS, IMAGES, LABELS, PREVIEW)


def differences(old: dict, new: dict) -> str:
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


def recorded(old: dict | None, request: dict) -> dict:
    """The request a dataset records, read as today's: one prepared before ``--min-size`` existed kept
    every image (``min_size`` 0), so a re-run with another --min-size names that difference."""
    old = dict(old or {})
    if old and "min_size" in request and "min_size" not in old:
        old["min_size"] = 0
    return old


def read_progress(out: Path) -> dict | None:
    try:
        state = json.loads((out / PROGRESS).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("format") == PROGRESS_FORMAT else None


def save_progress(out: Path, state: dict) -> None:
    atomic_write_json(out / PROGRESS, {"format": PROGRESS_FORMAT, **state})


def _temps(out: Path) -> list[Path]:
    """Temporary files our atomic writes leave when the process is killed mid-write."""
    return [tmp for name in OURS for tmp in out.glob(f".{name}.*.tmp")]


def clear(out: Path) -> None:
    """Remove what ``prepare`` wrote — meta.json first, so the dataset stops counting as complete."""
    for name in OURS:
        (out / name).unlink(missing_ok=True)
    for tmp in _temps(out):
        tmp.unlink(missing_ok=True)


def _tidy(out: Path, status: str, state: dict | None) -> tuple[str, dict | None]:
    for tmp in _temps(out):  # a kill mid-commit leaves one; it is never read
        tmp.unlink(missing_ok=True)
    return status, state


def inspect(out: Path, request: dict, force: bool) -> tuple[str, dict | None]:
    """Returns ("done", meta), ("resume", progress) or ("fresh", None), clearing on --force."""
    if out.exists() and not out.is_dir():
        raise SaganError(f"--out {out} exists and is not a directory")
    if not out.exists():
        return "fresh", None
    meta = read_meta(out) if (out / META).exists() else None
    progress = read_progress(out)
    if meta and meta.get("format") == FORMAT and meta.get("complete"):
        if force:
            clear(out)
            return "fresh", None
        if (old := recorded(meta.get("request"), request)) != request:
            raise SaganError(f"--out {out} already holds a dataset made differently "
                             f"({differences(old, request)}); "
                             "pass --force to rebuild it or choose another --out")
        (out / PROGRESS).unlink(missing_ok=True)  # left by a crash right after meta.json was written
        return _tidy(out, "done", meta)
    if progress is not None and not force:
        if (old := recorded(progress.get("request"), request)) != request:
            raise SaganError(f"--out {out} holds an unfinished dataset made differently "
                             f"({differences(old, request)}); "
                             "re-run the original command to finish it, or pass --force to start over")
        return _tidy(out, "resume", progress)
    if any((out / name).exists() for name in OURS):
        if force:
            clear(out)
            return "fresh", None
        raise SaganError(f"--out {out} holds an unfinished dataset that cannot be resumed; pass --force to start over")
    leftovers = set(_temps(out))
    if any(p not in leftovers for p in out.iterdir()):
        raise SaganError(f"--out {out} is a non-empty directory that holds no sagan dataset; choose another --out")
    return _tidy(out, "fresh", None)  # empty, or only what a run killed in its first write left
