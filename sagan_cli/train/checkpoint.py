"""Checkpoints: one weights_only-loadable file, written atomically; run-directory lookup.

Layout of a run: ``<outdir>/NNNNN-<name>/checkpoints/step-0001000.pt`` plus
``latest.pt`` (a hard link to the newest step file, or a copy where links are
not supported). A checkpoint is a dict of tensors and plain values; see
``docs/checkpoints.md`` for the keys.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

from sagan_cli.errors import SaganError
from sagan_cli.fsutil import atomic_link_or_copy, atomic_open

FORMAT = "sagan-checkpoint"
FORMAT_VERSION = 1
LATEST = "latest.pt"
STEP_RE = re.compile(r"^step-(\d+)\.pt$")
RUN_RE = re.compile(r"^(\d{5})-")


def step_file(step: int) -> str:
    return f"step-{step:07d}.pt"


def save_checkpoint(ckpt: dict, ckpt_dir: str | Path, keep: int) -> Path:
    """Write ``step-N.pt`` atomically, point ``latest.pt`` at it, keep the newest ``keep`` step files."""
    import torch

    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / step_file(int(ckpt["step"]))
    with atomic_open(path) as fh:
        torch.save(ckpt, fh)
    atomic_link_or_copy(path, ckpt_dir / LATEST)
    steps = sorted(p for p in ckpt_dir.iterdir() if STEP_RE.match(p.name))
    for old in steps[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Open a checkpoint with ``weights_only=True``; any problem is a one-line SaganError."""
    import torch

    path = Path(path)
    if not path.exists():
        raise SaganError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise SaganError(f"expected a checkpoint file, got a directory: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols: the error says enough
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise SaganError(f"{path}: refused to load, it holds pickled objects, not plain tensors ({_unpickler_reason(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise SaganError(f"{path} is not a readable checkpoint (truncated or corrupt: {type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SaganError(f"{path} is not a sagan checkpoint (no '{FORMAT}' marker)")
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise SaganError(f"{path} was written by a newer sagan (format {ckpt['format_version']}); upgrade sagan")
    return ckpt


def _unpickler_reason(exc: Exception) -> str:
    """The informative line of torch's weights_only refusal (it is many lines long)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "WeightsUnpickler error" in ln:
            return ln.split("error:", 1)[-1].strip().split(". ")[0][:200]
    return (lines[0] if lines else type(exc).__name__)[:200]


def run_dirs(outdir: str | Path) -> list[Path]:
    """Run directories under ``outdir``, oldest first (by their NNNNN index)."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        return []
    return sorted((p for p in outdir.iterdir() if p.is_dir() and RUN_RE.match(p.name)), key=lambda p: p.name)


def new_run_dir(outdir: str | Path, name: str) -> Path:
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"
    while True:
        existing = [int(RUN_RE.match(p.name).group(1)) for p in run_dirs(outdir)]
        path = outdir / f"{(max(existing) + 1) if existing else 0:05d}-{safe}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took this index
            continue


def latest_checkpoint(outdir: str | Path) -> Path:
    """``latest.pt`` of the newest run under ``outdir`` that has one."""
    for run in reversed(run_dirs(outdir)):
        candidate = run / "checkpoints" / LATEST
        if candidate.exists():
            return candidate
    raise SaganError(f"no checkpoint found under {outdir}/ (looked for */checkpoints/{LATEST}); train first or pass a path")


def resolve_checkpoint_arg(value: str | Path | None, outdir: str | Path = "runs") -> Path:
    """CKPT argument of sample/attn-map/evaluate: a path, a run directory, 'latest' or nothing."""
    if value is None or str(value) == "latest":
        return latest_checkpoint(outdir)
    path = Path(value)
    if path.is_dir() and (path / "checkpoints" / LATEST).exists():
        return path / "checkpoints" / LATEST
    return path


def run_dir_of(ckpt_path: Path) -> Path:
    """The run directory a checkpoint file belongs to (``<run>/checkpoints/x.pt``)."""
    ckpt_path = Path(ckpt_path)
    if ckpt_path.parent.name == "checkpoints":
        return ckpt_path.parent.parent
    return ckpt_path.parent
