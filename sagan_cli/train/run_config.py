"""A run's ``config.json``: what the trainer writes when a run starts, and ``sagan train --config`` reading it back.

The file holds the resolved options in two sections, ``model`` (``ModelConfig``) and ``train``
(``TrainConfig``), plus what the run recorded about itself (device, AMP dtype, the dataset's path and
fingerprint, versions, world size, the step a resume started from). ``--config`` replays the two option
sections, every key by its option name (``train.lr_g`` is ``--lr-g``; ``train.data`` is ``--data``), and
nothing else: the device and the rest describe the machine the run had, not a choice. A key of either
section that this version has no option for is refused, naming it, rather than dropped.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from sagan_cli import __version__
from sagan_cli.util import sniff
from sagan_cli.util.errors import SaganError
from sagan_cli.util.fsutil import atomic_write_json, write_error

CONFIG = "config.json"


def write(trainer, extra: dict) -> None:
    """``<run>/config.json`` of a starting (or resumed) run, atomically."""
    import torch

    path = trainer.run_dir / CONFIG
    ds = trainer.dataset
    try:
        atomic_write_json(path, {
            "model": trainer.mcfg.to_dict(), "train": trainer.tcfg.to_dict(), "device": str(trainer.device),
            "amp_dtype": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else None,
            "data": {"path": str(ds.path), "fingerprint": ds.fingerprint, "count": len(ds), "imsize": ds.imsize},
            "tool_version": __version__, "torch_version": str(torch.__version__), **extra,
        })
    except OSError as exc:
        raise write_error(path, exc) from None


def read(path: str | Path) -> dict:
    """A run's config.json (or the one in run directory ``path``) as a dict; anything else is one line."""
    path = Path(path)
    if path.is_dir() and (path / CONFIG).is_file():
        path = path / CONFIG
    if not path.exists():
        raise SaganError(f"--config {path}: no such file (give a run's config.json or its run directory)")
    if path.is_dir():
        raise SaganError(f"--config {path}: a directory without a {CONFIG}; give a run's config.json or its run directory")
    head = sniff.read_head(path, f"--config {path}: cannot read it")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise SaganError(f"--config {path} is not a run's {CONFIG}: it is {sniff.describe(head)}, not JSON") from None
    except OSError as exc:
        raise SaganError(f"--config {path}: cannot read it: {exc.strerror or exc}") from None
    if not isinstance(config, dict) or not all(isinstance(config.get(k), dict) for k in ("model", "train")):
        raise SaganError(f"--config {path} is not a run's {CONFIG} (it has no 'model' and 'train' sections)")
    return config


def replay(path: str | Path) -> dict:
    """The options ``path`` (a run's config.json) resolved: {option name (a field name): value}."""
    from sagan_cli.models.config import ModelConfig
    from sagan_cli.train.config import RENAMED, TrainConfig

    config = read(path)
    options, unknown = {}, []
    for section, cls, renamed in (("model", ModelConfig, {}), ("train", TrainConfig, RENAMED)):
        known = {f.name for f in dataclasses.fields(cls)}
        for key, value in config[section].items():
            name = renamed.get(key, key)
            if name not in known:
                unknown.append(f"{section}.{key}")
            elif name.endswith("_attn") and isinstance(value, list):
                options[name] = tuple(value)
            else:
                options[name] = value
    if unknown:
        raise SaganError(f"--config {path}: this version of sagan has no option for {', '.join(unknown)} "
                         "(written by another version? remove the key to replay the rest)")
    return options
