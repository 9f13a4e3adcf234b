"""Checkpoints: one weights_only-loadable file, written atomically, and found again after a crash.

Layout of a run: ``<outdir>/NNNNN-<name>/checkpoints/step-0001000.pt`` plus
``latest.pt`` (a hard link to the newest step file, or a copy where links are
not supported). A checkpoint is a dict of tensors and plain values; see
``docs/train.md`` for the keys.

Faults (see ``docs/errors.md``): a checkpoint holding a non-finite tensor is never
written; a full disk or any other write error is one line naming the checkpoint
that is still intact; temporary files left by a killed writer are removed by the
next save; and "latest" means the newest *complete* checkpoint, even when a crash
came between writing ``step-N.pt`` and re-pointing ``latest.pt``.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path

from sagan_cli.train import export
from sagan_cli.util import sniff
from sagan_cli.util.errors import EXIT_DIVERGED, SaganError
from sagan_cli.util.fsutil import atomic_link_or_copy, atomic_open, disk_full, why

FORMAT = "sagan-checkpoint"
FORMAT_VERSION = 1
LATEST = "latest.pt"
BEST = "best.pt"  # the state at the best evaluation during training (train/evaluation.py)
STEP_RE = re.compile(r"^step-(\d+)\.pt$")
# Temporary siblings written by atomic_open / atomic_link_or_copy for step files and latest.pt.
TEMP_RE = re.compile(r"^\.(step-\d+\.pt|latest\.pt|best\.pt)\..*\.tmp$")


def step_file(step: int) -> str:
    return f"step-{step:07d}.pt"


def save_checkpoint(ckpt: dict, ckpt_dir: str | Path, keep: int) -> Path:
    """Write ``step-N.pt`` atomically, point ``latest.pt`` at it, keep the newest ``keep`` step files.

    Refuses (exit 3) a state holding NaN or inf; any write error is a one-line SaganError
    that names the checkpoint which is still intact. Nothing half-written is ever renamed
    to a ``.pt`` name: the temporary file is removed on failure, or by the next save if the
    process was killed."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / step_file(int(ckpt["step"]))
    bad = non_finite_entry(ckpt)
    if bad:
        raise SaganError(
            f"training diverged: {bad} is not finite at step {int(ckpt['step'])}; refusing to write {path} "
            f"(last good checkpoint: {_describe(newest_checkpoint(ckpt_dir))})", exit_code=EXIT_DIVERGED)
    saved = False
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(ckpt_dir)
        _write(ckpt, path)
        saved = True
        atomic_link_or_copy(path, ckpt_dir / LATEST)
    except OSError as exc:
        raise _write_failed(exc, path, ckpt_dir, saved) from None
    steps = sorted(p for p in ckpt_dir.iterdir() if STEP_RE.match(p.name))
    for old in steps[:-keep]:
        old.unlink(missing_ok=True)
    return path


def save_best(ckpt: dict, ckpt_dir: str | Path) -> Path:
    """Write ``best.pt`` (the state at the best evaluation so far) atomically; a failure is one line and
    leaves the previous best.pt as it was (training goes on: the caller reports it as a warning)."""
    ckpt_dir = Path(ckpt_dir)
    path = ckpt_dir / BEST
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        _write(ckpt, path)
    except OSError as exc:
        reason = "disk full" if disk_full(exc) else why(path, exc)
        raise SaganError(f"cannot write {path} ({reason}); the previous best.pt, if any, is unchanged") from None
    return path


class _RecordingWriter:
    """What torch.save writes through. torch turns any exception raised by ``write`` into an
    opaque RuntimeError ('unexpected pos ...'); this remembers the real one, so that a full
    disk is reported as such and a second Ctrl-C stays a KeyboardInterrupt."""

    def __init__(self, fh):
        self._fh = fh
        self.error: BaseException | None = None

    def write(self, data) -> int:
        try:
            return self._fh.write(data)
        except BaseException as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._fh.flush()


def _write(ckpt: dict, path: Path) -> None:
    import torch

    with atomic_open(path) as fh:
        out = _RecordingWriter(fh)
        try:
            torch.save(ckpt, out)
        except RuntimeError:
            if out.error is not None:
                raise out.error from None
            raise


def _write_failed(exc: OSError, path: Path, ckpt_dir: Path, saved: bool) -> SaganError:
    reason = "disk full" if disk_full(exc) else why(path, exc)
    if saved:
        return SaganError(f"{path} was saved but {ckpt_dir / LATEST} could not be updated ({reason}); "
                          f"resume with `sagan train --resume {path}`")
    tail = intact_note(ckpt_dir)
    if disk_full(exc):
        return SaganError(f"disk full while writing checkpoint {path}; nothing was saved under that name, "
                          f"free some space ({tail})")
    return SaganError(f"cannot write checkpoint {path} ({reason}); {tail}")


def intact_note(ckpt_dir: Path) -> str:
    """For a message about a failure mid-run: which checkpoint is intact and how to go on from it."""
    ckpt_dir = Path(ckpt_dir)
    prev = newest_checkpoint(ckpt_dir) if ckpt_dir.is_dir() else None
    return (f"the last checkpoint, {_describe(prev)}, is intact: resume with `sagan train --resume {prev}`"
            if prev else "no earlier checkpoint of this run exists")


def non_finite_entry(ckpt: dict) -> str | None:
    """The first tensor of the networks or optimisers holding NaN/inf, as 'G_ema.<key>', or None."""
    import torch

    def walk(prefix: str, value):
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return prefix
        elif isinstance(value, dict):
            for k, v in value.items():
                found = walk(f"{prefix}.{k}", v)
                if found:
                    return found
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                found = walk(f"{prefix}.{i}", v)
                if found:
                    return found
        return None

    for key in ("G", "D", "G_ema", "opt_G", "opt_D"):
        found = walk(key, ckpt.get(key))
        if found:
            return found
    return None


def remove_stale_temps(ckpt_dir: Path) -> list[Path]:
    """Delete temporary files a killed writer left in ``ckpt_dir`` (they are never checkpoints)."""
    removed = []
    for p in ckpt_dir.iterdir():
        if TEMP_RE.match(p.name):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def newest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint in ``ckpt_dir``: ``latest.pt``, unless a crash came after
    a newer ``step-N.pt`` was renamed into place but before ``latest.pt`` was re-pointed.

    "Newer" is by modification time, not step number, so a run resumed from an earlier
    checkpoint is continued from where it went on, not from the abandoned later files."""
    latest = ckpt_dir / LATEST
    best, best_key = None, None
    for p in [latest, *sorted(ckpt_dir.glob("step-*.pt"), reverse=True)]:
        if p != latest and not STEP_RE.match(p.name):
            continue
        try:
            st = p.stat()
        except OSError:
            continue
        key = (st.st_mtime_ns, p == latest)  # ties (a hard link shares its mtime): latest.pt
        if best_key is None or key > best_key:
            best, best_key = p, key
    return best


def _describe(path: Path | None) -> str:
    """For messages: the step file ``latest.pt`` is a hard link to (it says which step), else the path itself."""
    if path is None:
        return "none"
    if path.name == LATEST:
        for p in sorted(path.parent.glob("step-*.pt"), reverse=True):
            try:
                if p.samefile(path):
                    return str(p)
            except OSError:
                continue
    return str(path)


def load_checkpoint(path: str | Path) -> dict:
    """Open a checkpoint with ``weights_only=True``; any problem is a one-line SaganError.

    A file that is not a zip archive (what torch.save writes) is refused before torch sees
    it: never unpickled, whatever it holds."""
    import torch

    path = Path(path)
    if not path.exists():
        raise SaganError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise SaganError(f"expected a checkpoint file, got a directory: {path}")
    head = sniff.read_head(path, f"cannot read {path}")
    if export.looks_like_safetensors(head):  # a generator `sagan export` wrote: no pickle at all
        return export.read_safetensors(path)
    if not head.startswith(sniff.ZIP):  # torch.save has written zip archives since PyTorch 1.6
        raise SaganError(f"{path} is not a sagan checkpoint: it is {sniff.describe(head)}, not a PyTorch checkpoint archive")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols: the error says enough
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise SaganError(f"{path}: refused to load, it holds pickled objects, not plain tensors ({sniff.unpickler_reason(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise SaganError(f"{path} is not a readable checkpoint (truncated or corrupt: {type(exc).__name__})") from None
    if isinstance(ckpt, dict) and ckpt.get("format") == export.FORMAT and isinstance(ckpt.get("G"), dict):
        return export.as_state(ckpt, ckpt["G"], path)  # an exported generator in a .pt
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise SaganError(f"{path} is not a sagan checkpoint (no '{FORMAT}' marker)")
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise SaganError(f"{path} was written by a newer sagan (format {ckpt['format_version']}); upgrade sagan")
    bad = [k for k, kind in REQUIRED_KEYS.items() if not isinstance(ckpt.get(k), kind)]
    if bad:
        raise SaganError(f"{path} is an incomplete sagan checkpoint ({', '.join(bad)} missing or malformed)")
    return ckpt


# What every command needs from a checkpoint (train --resume needs the rest of it, too).
REQUIRED_KEYS = {"model_config": dict, "step": int, "G": dict}
# What `train --resume` needs on top: the state of everything but G.
RESUME_KEYS = {"train_config": dict, "D": dict, "opt_G": dict, "opt_D": dict, "rng": dict, "sampler": dict, "data": dict}


def check_resumable(ckpt: dict, path: str | Path) -> None:
    """Refuse, in one line, a checkpoint that holds a generator but not the state training goes on from
    (G-only exports, hand-trimmed files): better than a KeyError half-way through restoring it."""
    missing = [k for k, kind in RESUME_KEYS.items() if not isinstance(ckpt.get(k), kind)]
    if isinstance(ckpt.get("rng"), dict) and "torch" not in ckpt["rng"]:
        missing.append("rng.torch")
    if isinstance(ckpt.get("sampler"), dict):
        missing += [f"sampler.{k}" for k in ("seed", "epoch", "position") if not isinstance(ckpt["sampler"].get(k), int)]
    if missing:
        raise SaganError(f"{path} holds no training state ({', '.join(missing)} missing); "
                         "it can be sampled from but not resumed")
