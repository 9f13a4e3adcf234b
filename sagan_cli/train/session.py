"""`sagan train` end to end: resolve options, data and resume point, then run the Trainer."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

from sagan_cli.models.config import ModelConfig
from sagan_cli.train.config import TrainConfig
from sagan_cli.data.dataset import find_latest_dataset, open_dataset, read_meta
from sagan_cli.train import finetune
from sagan_cli.train.log import require_tensorboard
from sagan_cli.util.errors import SaganError
from sagan_cli.train.checkpoint import check_resumable, load_checkpoint
from sagan_cli.train.runs import latest_checkpoint, lock_run, new_run_dir, run_dir_of

MODEL_KEYS = {f.name for f in dataclasses.fields(ModelConfig)}
# What may change when a run is resumed; everything else is the run's identity.
RESUME_OVERRIDABLE = {"steps", "log_every", "sample_every", "ckpt_every", "keep_ckpts", "tensorboard", "amp", "compile",
                      "sync_bn", "standing_stats", "eval_every"}


def _differs(a, b) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return sorted(a or ()) != sorted(b or ())
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) > 1e-12 * max(abs(float(a)), abs(float(b)), 1.0)
    return a != b


def _resume_configs(ckpt: dict, model_opts: dict, train_opts: dict, explicit: set[str]):
    mcfg = ModelConfig.from_dict(ckpt["model_config"])
    saved = TrainConfig.from_dict(ckpt["train_config"])
    for name in sorted(explicit):
        if name in RESUME_OVERRIDABLE or name in ("data", "name"):
            continue
        if name in MODEL_KEYS:
            mine, theirs = model_opts[name], getattr(mcfg, name)
            if name.endswith("_attn") and mine is None:
                continue
        else:
            mine, theirs = train_opts[name], getattr(saved, name)
        if _differs(mine, theirs):
            flag = "--" + name.replace("_", "-")
            raise SaganError(f"{flag} {mine} differs from the resumed run's {theirs}; a resumed run keeps its settings (drop {flag})")
    tcfg = dataclasses.replace(saved, **{k: train_opts[k] for k in explicit & RESUME_OVERRIDABLE})
    return mcfg, tcfg


def prepare_run(*, model_opts: dict, train_opts: dict, explicit: set[str], resume: str | None,
                outdir: Path, data: Path | None, device_spec: str, say, dist=None, dist_timeout: int = 600):
    """Validate everything that can be checked before a run directory is touched.

    With several processes (``dist``) every rank validates the same way, joins the
    process group, and only rank 0 creates the run directory and speaks.
    """
    from sagan_cli.train import distributed
    from sagan_cli.util.device import resolve_device

    dist = dist or distributed.SINGLE
    if not dist.is_main:
        say = _silent
    if dist.enabled:
        device = distributed.device_for(dist, device_spec)
    else:
        device = resolve_device(device_spec)
    ckpt = parent = None
    if resume is not None:
        ckpt_path = latest_checkpoint(outdir) if resume == "latest" else Path(resume)
        ckpt = load_checkpoint(ckpt_path)
        check_resumable(ckpt, ckpt_path)
        mcfg, tcfg = _resume_configs(ckpt, model_opts, train_opts, explicit)
        if tcfg.steps <= int(ckpt["step"]):
            raise SaganError(
                f"the run is already at step {ckpt['step']} of {tcfg.steps}; pass --steps N with N > {ckpt['step']} to train further"
            )
        data_dir = data or Path(ckpt["data"]["path"])
        ds = open_dataset(data_dir, mcfg.imsize)
        if ckpt["data"].get("fingerprint") and ds.fingerprint != ckpt["data"]["fingerprint"]:
            raise SaganError(f"dataset {data_dir} is not the one this run was trained on (fingerprint differs)")
        run_dir = run_dir_of(ckpt_path)
        say(f"resuming {run_dir} from step {ckpt['step']} ({ckpt_path})")
    else:
        parent_path = Path(train_opts["init_from"]) if train_opts.get("init_from") else None
        if parent_path is not None:  # fine-tuning: the parent's model (train/finetune.py)
            parent = finetune.load_parent(parent_path, train_opts.get("keep_optim", False))
            mcfg = finetune.model_config(parent, parent_path, model_opts, explicit)
        else:
            mcfg = ModelConfig(**model_opts)
        if data is None:
            data = find_latest_dataset("data", mcfg.imsize)
            say(f"using dataset {data} (the most recent {mcfg.imsize}px dataset under data/; pass --data to choose)")
        if parent_path is not None:
            finetune.check_imsize(mcfg, parent_path, data, (read_meta(Path(data)) or {}).get("imsize"))
        ds = open_dataset(data, mcfg.imsize)
        if ds.num_classes and not train_opts.get("unconditional") and parent_path is None:  # labelled: conditional
            mcfg = dataclasses.replace(mcfg, num_classes=ds.num_classes)
        if parent_path is not None:
            finetune.check_classes(mcfg, data, ds.num_classes, train_opts.get("unconditional", False))
            parent = (parent, finetune.parent_record(parent_path, parent, train_opts.get("keep_optim", False)))
        tcfg = TrainConfig(**{**train_opts, "data": str(ds.path), "name": train_opts.get("name") or ds.path.name})
        run_dir = None
    if tcfg.batch > len(ds):
        raise SaganError(f"--batch {tcfg.batch} is larger than the dataset ({len(ds)} images)")
    distributed.check_batch(tcfg.batch, dist.world)  # a resumed run keeps its global batch
    from sagan_cli.train.losses import LOSSES

    if dist.enabled and LOSSES[tcfg.loss].penalty is not None:  # tests/test_train_losses.py shows the gap
        raise SaganError(f"--loss {tcfg.loss} trains in one process only for now: with several, its penalty does not "
                         "yet reproduce the one-process weights; drop --nproc / torchrun")
    if tcfg.tensorboard:
        require_tensorboard()
    # Rank 0 writes the run, so it holds the run's lock; taken after every check that needs no lock, so
    # a refused command leaves nothing behind, and before anything of the run is read or written.
    lock = lock_run(run_dir) if run_dir is not None and dist.is_main else None
    try:
        trainer = _start(mcfg, tcfg, device, ds, run_dir, ckpt, dist, dist_timeout, outdir, say, parent)
    except BaseException:
        if lock is not None:
            lock.release(remove=True)
        raise
    if lock is not None:
        trainer.run_lock = lock
    return trainer


def _start(mcfg, tcfg, device, ds, run_dir, ckpt, dist, dist_timeout, outdir, say, parent=None):
    """Join the process group, build the Trainer, make the run directory (new runs) and write config.json."""
    import torch

    from sagan_cli.train import distributed
    from sagan_cli.train.loop import Trainer

    distributed.init(dist, device, dist_timeout)
    trainer = Trainer(mcfg, tcfg, device, ds, run_dir, resume=ckpt, dist=dist)
    if parent is not None:  # --init-from: its weights at step 0, recorded in config.json and every checkpoint
        finetune.start_from(trainer, parent[0], tcfg.keep_optim)
        trainer.parent = parent[1]
    elif ckpt is not None:  # a resumed fine-tuned run keeps its record
        trainer.parent = ckpt.get("parent") if isinstance(ckpt.get("parent"), dict) else None
    if run_dir is None and dist.is_main:
        trainer.run_dir = new_run_dir(outdir, tcfg.name)
        trainer.run_lock = lock_run(trainer.run_dir)  # a new directory: nobody else can hold it yet
    n_g = sum(p.numel() for p in trainer.G.parameters())
    n_d = sum(p.numel() for p in trainer.D.parameters())
    from sagan_cli.util.device import describe

    say(
        f"run {trainer.run_dir} | data {ds.path} ({len(ds)} images, {ds.imsize}px) | device {describe(device)}"
        f"{' bf16' if trainer.amp_dtype == torch.bfloat16 else ''}\n"
        f"{f'{dist.world} processes, ' if dist.enabled else ''}model {mcfg.arch} {mcfg.imsize}px{f', {mcfg.num_classes} classes' if mcfg.num_classes else ''}, attention {mcfg.attention}: G at {_res(mcfg.g_attn)}, D at {_res(mcfg.d_attn)} | "
        f"G {n_g / 1e6:.2f}M params, D {n_d / 1e6:.2f}M params | batch {tcfg.batch}"
        f"{f' ({tcfg.batch // dist.world} per process)' if dist.enabled else ''}, steps {trainer.step}→{tcfg.steps}"
    )
    if dist.is_main:
        extra = {"world_size": dist.world}
        if ckpt is not None:
            extra["resumed_from_step"] = trainer.step
        if trainer.parent is not None:
            extra["parent"] = trainer.parent
        try:
            trainer.write_config(extra)
        except SaganError:
            if ckpt is None:  # a run that never started leaves no empty directory to skip a number for
                trainer.run_lock.release(remove=True)
                with contextlib.suppress(OSError):
                    trainer.run_dir.rmdir()
            raise
    return trainer


def _silent(_text: str) -> None:
    pass


def _res(rs) -> str:
    return ",".join(map(str, rs)) if rs else "none"
