"""`sagan export`: a checkpoint's generator alone, with its model config, in a file that loads with no unpickling.

What is written is the generator ``sample``, ``attn-map`` and ``evaluate`` would use: the EMA weights
unless ``--no-ema``, with BatchNorm standing statistics already re-estimated for them (models/standing.py)
unless ``--no-standing-stats``. Two containers, chosen by the file's ending:

* ``.safetensors``: the tensors, and in the header's string metadata each entry of ``META_KEYS`` as JSON
  (``format`` is ``sagan-generator``). Reading it parses a JSON header and copies bytes, nothing more.
* ``.pt``: one ``torch.save`` dict of the same entries plus ``G`` (the tensors), opened with
  ``weights_only=True`` as checkpoints are.

``read`` turns either into the dict shape ``load_checkpoint`` returns for a checkpoint (``G`` and, for an
EMA export, ``G_ema``; ``standing_stats_applied``), so every command that takes a checkpoint takes it.
"""

from __future__ import annotations

import json
from pathlib import Path

from sagan_cli.util.errors import SaganError

FORMAT = "sagan-generator"
FORMAT_VERSION = 1
SUFFIXES = (".safetensors", ".pt")
META_KEYS = ("format", "format_version", "tool_version", "torch_version", "model_config", "step", "images_seen",
             "ema", "standing_stats", "train_config", "data", "source")
MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


def check_out(out: Path, force: bool) -> None:
    """Before any work: the ending names a container, and an existing file is replaced only with ``--force``."""
    if out.suffix.lower() not in SUFFIXES:
        raise SaganError(f"--out {out}: give a file name ending in .safetensors (no pickle at all) or .pt (torch.save)")
    if out.is_dir():
        raise SaganError(f"--out {out} is a directory; give a file name ending in .safetensors or .pt")
    if out.exists() and not force:
        raise SaganError(f"--out {out} exists; pass --force to replace it")


def export(state: dict, source: Path, out: Path, ema: bool, standing: bool) -> dict:
    """Write ``state``'s generator to ``out`` atomically; returns what was written (the metadata)."""
    import torch

    from sagan_cli import __version__
    from sagan_cli.models.load import load_generator
    from sagan_cli.models.standing import batch_norms
    from sagan_cli.util.fsutil import atomic_open, write_error

    if state.get("format") == FORMAT:
        raise SaganError(f"{source} is already an exported generator; export from the training checkpoint")
    G, cfg = load_generator(state, ema, torch.device("cpu"), standing)
    weights = {k: v.detach().clone().contiguous() for k, v in G.state_dict().items()}
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "tool_version": __version__,
        "torch_version": str(torch.__version__), "model_config": cfg.to_dict(), "step": int(state["step"]),
        "images_seen": int(state.get("images_seen", 0)), "ema": ema,
        "standing_stats": bool(standing and batch_norms(G)),  # applied to the weights' BatchNorm buffers
        "train_config": state.get("train_config"), "data": state.get("data"),
        "source": {"checkpoint": str(source), "step": int(state["step"]), "ema": ema,
                   "standing_stats": bool(standing and batch_norms(G))},
    }
    try:
        with atomic_open(out) as fh:
            if out.suffix.lower() == ".safetensors":
                from safetensors.torch import save

                fh.write(save(weights, {k: json.dumps(meta[k]) for k in META_KEYS}))
            else:
                torch.save({**meta, "G": weights}, fh)
    except OSError as exc:
        raise write_error(out, exc, "--out") from None
    return meta


def looks_like_safetensors(head: bytes) -> bool:
    """A safetensors file begins with its header's length (8 bytes, little-endian) and then the JSON header."""
    return len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= MAX_HEADER


def read_safetensors(path: Path) -> dict:
    """An exported .safetensors generator as a checkpoint-shaped dict; a torn or foreign file is one line."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, ValueError, OSError, RuntimeError) as exc:
        raise SaganError(f"{path} is not a readable safetensors file (truncated or corrupt: {type(exc).__name__})") from None
    try:
        meta = {k: json.loads(v) for k, v in raw.items() if k in META_KEYS}
    except (ValueError, TypeError):
        meta = {}
    if meta.get("format") != FORMAT:
        raise SaganError(f"{path} is a safetensors file but not a sagan generator (no '{FORMAT}' metadata; "
                         "`sagan export` writes those)")
    return as_state(meta, weights, path)


def as_state(meta: dict, weights: dict, path: Path) -> dict:
    """Entries of an export (either container) → the dict commands take from ``load_checkpoint``."""
    if int(meta.get("format_version") or 0) > FORMAT_VERSION:
        raise SaganError(f"{path} was written by a newer sagan (generator format {meta['format_version']}); upgrade sagan")
    state = {k: meta.get(k) for k in META_KEYS}
    state.update(G=weights, G_ema=weights if meta.get("ema") else None,
                 standing_stats_applied=bool(meta.get("standing_stats")))
    return state
