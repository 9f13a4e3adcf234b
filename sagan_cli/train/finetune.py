"""`sagan train --init-from CKPT`: a new run that starts from a checkpoint's weights (fine-tuning).

The new run takes the parent's G, D and G_ema weights and, unless options say otherwise, its model
config; it is a run of its own: step 0, its own data, seed and training options, fresh Adam states
(``--keep-optim`` keeps the parent's moments, with this run's learning rates and betas). What the model
is can not change: an option that names a different architecture, image size, width, attention or
latent size than the parent's is refused, naming the field and both values, and so is a dataset of
another image size or another number of classes. An exported generator (`sagan export`) is refused: it
holds no D, and a GAN fine-tuned with a fresh D forgets what G learned in its first steps.

The parent is recorded (``parent_record``) in config.json and in every checkpoint of the run, with the
sha256 of the file as it was read, so a fine-tuned run says which weights it grew from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sagan_cli.models.config import ModelConfig
from sagan_cli.train import export
from sagan_cli.train.checkpoint import load_checkpoint
from sagan_cli.util.errors import SaganError

# What the parent must hold: the networks, and the optimiser states for --keep-optim.
NEEDED = ("G", "D")
OPTIM = ("opt_G", "opt_D")


def load_parent(path: Path, keep_optim: bool) -> dict:
    """The parent checkpoint, refused in one line when it cannot start a fine-tuned run."""
    ckpt = load_checkpoint(path)
    if ckpt.get("format") == export.FORMAT:
        raise SaganError(f"--init-from {path} is an exported generator (no discriminator): fine-tune from the "
                         "training checkpoint it was exported from (runs/.../checkpoints/*.pt)")
    missing = [k for k in NEEDED + (OPTIM if keep_optim else ()) if not isinstance(ckpt.get(k), dict)]
    if missing:
        raise SaganError(f"--init-from {path} holds no {', '.join(missing)}; give a training checkpoint"
                         f"{' (or drop --keep-optim)' if set(missing) <= set(OPTIM) else ''}")
    return ckpt


def _shown(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


def model_config(parent: dict, path: Path, model_opts: dict, explicit: set[str]) -> ModelConfig:
    """The parent's model config; an option given here that differs from it is refused, naming it."""
    try:
        mcfg = ModelConfig.from_dict(parent["model_config"])
    except (TypeError, ValueError) as exc:
        raise SaganError(f"--init-from {path}: its model config is not readable ({exc})") from None
    for name in sorted(explicit & set(model_opts)):
        mine, theirs = model_opts[name], getattr(mcfg, name)
        if name.endswith("_attn"):
            if mine is None:
                continue
            mine, theirs = sorted(mine), sorted(theirs)
        if mine != theirs:
            flag = "--" + name.replace("_", "-")
            raise SaganError(f"{flag} {_shown(mine)} differs from the --init-from checkpoint's {name} {_shown(theirs)}; "
                             f"a fine-tuned run keeps its parent's model (drop {flag})")
    return mcfg


def check_imsize(mcfg: ModelConfig, path: Path, data: Path, size) -> None:
    """Before the dataset is opened (whose own message would suggest another --imsize): the parent's size."""
    if isinstance(size, int) and size != mcfg.imsize:
        raise SaganError(f"--init-from {path} is a {mcfg.imsize}px model but --data {data} holds {size}px images; "
                         f"fine-tune on a dataset prepared with --imsize {mcfg.imsize}")


def check_classes(mcfg: ModelConfig, data: Path, classes: int, unconditional: bool) -> None:
    """The dataset's labels fit the label path the parent was built with (none, or as many classes)."""
    wanted = 0 if unconditional else classes
    if wanted != mcfg.num_classes:
        theirs = f"{mcfg.num_classes} classes" if mcfg.num_classes else "unconditional"
        mine = f"{classes} classes" if wanted else "unlabelled" if not classes else "--unconditional"
        raise SaganError(f"num_classes differs: the --init-from checkpoint's model is {theirs}, --data {data} "
                         f"is {mine}; fine-tune a conditional model on a dataset with as many classes")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parent_record(path: Path, parent: dict, keep_optim: bool) -> dict:
    """What config.json and the checkpoints say about the parent."""
    data = parent.get("data") if isinstance(parent.get("data"), dict) else {}
    return {"checkpoint": str(Path(path).resolve()), "sha256": sha256(Path(path)), "step": int(parent["step"]),
            "images_seen": int(parent.get("images_seen", 0)), "data": data.get("path"),
            "data_fingerprint": data.get("fingerprint"), "keep_optim": bool(keep_optim)}


def start_from(trainer, parent: dict, keep_optim: bool) -> None:
    """Load the parent's weights (and with ``keep_optim`` its Adam moments) into a Trainer at step 0."""
    try:
        trainer.G.load_state_dict(parent["G"])
        trainer.D.load_state_dict(parent["D"])
        if trainer.ema is not None:
            trainer.ema.model.load_state_dict(parent["G_ema"] if isinstance(parent.get("G_ema"), dict) else parent["G"])
        if keep_optim:
            for opt, key in ((trainer.opt_G, "opt_G"), (trainer.opt_D, "opt_D")):
                mine = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
                opt.load_state_dict(parent[key])
                for group, hyper in zip(opt.param_groups, mine):  # this run's rates and betas, the parent's moments
                    group.update(hyper)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise SaganError(f"the --init-from checkpoint does not fit this model ({str(exc).splitlines()[0][:200]})") from None
