"""`sagan train`: every option is declared once, here, and reaches ModelConfig / TrainConfig by name.

A parameter whose name is a field of ``ModelConfig`` or ``TrainConfig`` is handed to it as parsed
(no list repeats them); the dataclasses hold the checks. The rest (``runs``, ``resume``, ``device``,
the multi-process options) steer this command. Torch is imported inside the body.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path

import typer

from sagan_cli.cli import options
from sagan_cli.models import ARCHITECTURES
from sagan_cli.models.config import ATTENTION_FORMS, INITS
from sagan_cli.train.augment import POLICIES
from sagan_cli.train.config import FAKE_LABELS
from sagan_cli.train.losses import LOSSES
from sagan_cli.train.presets import PRESETS
from sagan_cli.util.errors import SaganError
from sagan_cli.util.images import IMSIZES_TEXT

Attention = options.choices("Attention", ATTENTION_FORMS)
Init = options.choices("Init", INITS)
FakeLabels = options.choices("FakeLabels", FAKE_LABELS)


def _resolutions(flag: str):
    """Typer callback: '16,32' → (16, 32), 'none' → (), not given → None (the default for the imsize)."""

    def parse(value: str | None) -> tuple[int, ...] | None:
        if value is None:
            return None
        if value.strip().lower() in ("", "none"):
            return ()
        try:
            return tuple(int(v) for v in value.split(","))
        except ValueError:
            raise SaganError(f"{flag} {value!r}: expected a comma-separated list of feature-map sizes, "
                             "e.g. 16,32, or 'none'") from None

    return parse


def _config_fields(cls, params: dict) -> dict:
    """The parameters that are fields of dataclass ``cls``, Enums as their values."""
    return {f.name: (params[f.name].value if isinstance(params[f.name], Enum) else params[f.name])
            for f in dataclasses.fields(cls) if f.name in params}


def _replay(ctx: typer.Context, config: Path, resume: str | None) -> None:
    """--config: a run's resolved options (train/run_config.py) stand in for every option not given here."""
    from sagan_cli.train.run_config import replay

    if resume is not None:
        raise SaganError("--config starts a new run with a run's options, --resume continues a run; give one of them")
    given = options.explicit(ctx)
    for name, value in replay(config).items():
        if name in ctx.params and name not in given:
            ctx.params[name] = (Path(value) if value else None) if name == "data" else value


def _preset(ctx: typer.Context, name: str, resume: str | None, config: Path | None) -> set[str]:
    """--preset: its values stand in for every option not given here (train/presets.py); the names it set."""
    from sagan_cli.train.presets import values

    chosen = values(name)
    if resume is not None:
        raise SaganError("--preset starts a new run with its settings, --resume continues a run with its own; give one of them")
    if config is not None:
        raise SaganError("--preset and --config conflict: both give the options of a new run; give one of them")
    given = options.explicit(ctx)
    kinds = {"attention": Attention, "init": Init}
    for key, value in chosen.items():
        if key not in given:
            ctx.params[key] = kinds[key](value) if key in kinds else value
    return set(chosen) - given


def _init_from(init_from, keep_optim: bool, resume: str | None) -> str:
    """--init-from as TrainConfig holds it ('' when not given; --config replays it as text)."""
    if init_from and resume is not None:
        raise SaganError("--init-from starts a new run from a checkpoint's weights, --resume continues a run; give one of them")
    if keep_optim and not init_from:
        raise SaganError("--keep-optim keeps the optimiser states of an --init-from checkpoint; give --init-from CKPT too")
    if init_from and not Path(init_from).exists():
        raise SaganError(f"--init-from {init_from}: no such checkpoint file")
    return str(init_from) if init_from else ""


def train(
    ctx: typer.Context,
    arch: str = typer.Option("dcgan", autocompletion=lambda: list(ARCHITECTURES), help=f"Architecture: {' | '.join(ARCHITECTURES)} (docs/model.md)."),
    imsize: int = typer.Option(64, help=f"Image size: {IMSIZES_TEXT} (default: the size of --data, else 64)."),
    data: Path | None = typer.Option(None, help="Prepared dataset directory (default: newest with this --imsize under ./data)."),
    steps: int = typer.Option(100_000, min=1, help="Train until this many G steps in total."),
    batch: int = typer.Option(64, min=1, help="Global batch size (images per D and per G step, split over processes)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Runs root: the parent of run directories (a new run is NNNNN-<name> in it)."),
    name: str | None = typer.Option(None, help="Run name (default: the dataset's directory name)."),
    resume: str | None = typer.Option(None, help="Continue a run: 'latest' (newest run under --runs) or a checkpoint path."),
    config: Path | None = typer.Option(None, "--config", help="Start a new run with the options of a run's config.json (or run directory); options given here override."),
    init_from: Path | None = typer.Option(None, "--init-from", help="Fine-tune: a new run from this checkpoint's G, D and G_ema weights (its model; step 0, fresh optimisers)."),
    preset: str | None = typer.Option(None, "--preset", autocompletion=lambda: list(PRESETS),
                                      help=f"Named settings: {' | '.join(PRESETS)} (the authors' ImageNet model; docs/train.md#presets); options given here override them."),
    keep_optim: bool = typer.Option(False, "--keep-optim", help="With --init-from: keep the checkpoint's Adam moments (this run's learning rates)."),
    device: str = options.device_option(),
    seed: int = typer.Option(0, min=0, help="Seed for weights, noise and data order."),
    log_every: int = typer.Option(100, min=1, help="Log metrics every N steps."),
    sample_every: int = typer.Option(1000, min=1, help="Write a sample grid every N steps."),
    ckpt_every: int = typer.Option(1000, min=1, help="Write a checkpoint every N steps."),
    keep_ckpts: int = typer.Option(5, min=1, help="Keep the newest K step checkpoints (plus latest.pt)."),
    num_samples: int = typer.Option(64, min=1, help="Images in each sample grid (fixed z)."),
    standing_stats: bool = typer.Option(True, "--standing-stats/--no-standing-stats",
                                        help="Sample grids: re-estimate G's BatchNorm statistics for its weights first."),
    attention: Attention | None = typer.Option(None, help="Attention block: 'paper' (as in the paper) or 'official' (authors' code) "
                                                 "(default: paper for dcgan, official for resnet)."),
    init: Init = typer.Option(Init("default"), help="Weight init: default (PyTorch's), xavier (the authors' code) or ortho (BigGAN)."),
    unconditional: bool = typer.Option(False, "--unconditional", help="Ignore a labelled dataset's labels: an unconditional model "
                                       "(default: class-conditional when the dataset has labels)."),
    fake_labels: FakeLabels = typer.Option(FakeLabels("uniform"), help="Class labels of the fakes: uniform, or data (the dataset's class frequencies)."),
    g_attn: str | None = typer.Option(None, callback=_resolutions("--g-attn"),
                                      help="G feature-map sizes that get attention, e.g. 16,32, or none (default: by imsize; 16,32 at 64px)."),
    d_attn: str | None = typer.Option(None, callback=_resolutions("--d-attn"),
                                      help="D feature-map sizes that get attention, e.g. 8,4, or none (default: by imsize; 8,4 at 64px)."),
    z_dim: int = typer.Option(128, min=1, help="Latent size."),
    g_conv_dim: int = typer.Option(64, min=1, help="G base width (channels at the last block)."),
    d_conv_dim: int = typer.Option(64, min=1, help="D base width (channels at the first block)."),
    loss: str = typer.Option("hinge", autocompletion=lambda: list(LOSSES), help=f"Adversarial loss: {' | '.join(LOSSES)} (docs/train.md)."),
    mirror: bool = typer.Option(False, "--mirror", help="Flip each real image left-right with probability 1/2 before D (small datasets; docs/train.md#augmentation)."),
    diffaug: str = typer.Option("", metavar="POLICIES", autocompletion=lambda: list(POLICIES),
                                help=f"DiffAugment of real and fake images before D, comma-separated: {', '.join(POLICIES)} (small datasets; docs/train.md#augmentation)."),
    gp_weight: float = typer.Option(10.0, help="Weight of the gradient penalty of --loss wgan-gp."),
    n_dis: int = typer.Option(1, min=1, help="D steps per G step, each on the next real batch (SNGAN: 5); a step is one G step."),
    lr_decay: float = typer.Option(1.0, metavar="GAMMA", help="Multiply both learning rates by GAMMA every --lr-decay-every steps (1: constant)."),
    lr_decay_every: int = typer.Option(1000, min=1, help="Steps between two --lr-decay multiplications."),
    lr_g: float = typer.Option(1e-4, help="G learning rate (TTUR)."),
    lr_d: float = typer.Option(4e-4, help="D learning rate (TTUR)."),
    beta1: float = typer.Option(0.0, help="Adam beta1."),
    beta2: float = typer.Option(0.9, help="Adam beta2."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Keep an exponential moving average of G."),
    ema_decay: float = typer.Option(0.999, help="EMA decay per step."),
    ema_start: int = typer.Option(1000, min=0, help="Steps before the EMA starts averaging (it copies G until then)."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="bf16 autocast on CUDA (no effect on CPU)."),
    compile: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile G and D (default: on for CUDA, off otherwise)."),
    eval_every: int = typer.Option(0, min=0, help="Evaluate every N steps and at the end (0: never): a record in metrics.jsonl, checkpoints/best.pt."),
    eval_metrics: str = typer.Option("swd", help="Metrics of those evaluations, comma-separated (as `sagan evaluate`'s flags); the first decides best.pt."),
    eval_num: int = typer.Option(2048, min=2, help="Generated images per evaluation (and as many real ones, a fixed subset)."),
    inception_weights: Path | None = typer.Option(None, "--inception-weights", envvar="SAGAN_INCEPTION_WEIGHTS",
                                                  help="FID Inception weights, for --eval-metrics fid/is/kid/pr (as `sagan evaluate`)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also log to TensorBoard (needs the tensorboard package)."),
    nproc: int | None = typer.Option(None, min=1, help="Train with N processes on this machine (one per GPU; gloo on CPU), as torchrun does."),
    sync_bn: bool = typer.Option(True, "--sync-bn/--no-sync-bn", help="With several processes: G's BatchNorm statistics over the global batch."),
    dist_timeout: int = typer.Option(600, min=10, help="With several processes: seconds a rank waits for the others before giving up."),
):
    """Train a SAGAN on a prepared dataset; Ctrl-C saves a checkpoint and exits 0."""
    from sagan_cli.models.config import ModelConfig
    from sagan_cli.train import distributed
    from sagan_cli.train.config import TrainConfig
    from sagan_cli.util.device import validate_device_string

    validate_device_string(device)
    if config is not None:
        _replay(ctx, config, resume)
        data, batch, loss, eval_every, eval_metrics = (ctx.params[k] for k in ("data", "batch", "loss", "eval_every", "eval_metrics"))
    preset_set = _preset(ctx, preset, resume, config) if preset is not None else set()
    batch, loss = ctx.params["batch"], ctx.params["loss"]
    if "gp_weight" in options.explicit(ctx) and resume is None and loss in LOSSES and LOSSES[loss].penalty is None:
        raise SaganError(f"--gp-weight weights a loss's penalty term; --loss {loss} has none (it applies to wgan-gp)")
    model_opts = _config_fields(ModelConfig, ctx.params)
    train_opts = _config_fields(TrainConfig, ctx.params)
    train_opts["init_from"] = _init_from(ctx.params["init_from"], ctx.params["keep_optim"], resume)
    train_opts["preset"] = preset or (train_opts.get("preset") if config is not None else "") or ""
    if resume is None and data is not None and options.given(ctx, "imsize") != "COMMANDLINE" and "imsize" not in preset_set:
        from sagan_cli.data.dataset import read_meta

        size = (read_meta(Path(data)) or {}).get("imsize")  # a missing or broken dataset is reported later
        if isinstance(size, int):
            model_opts["imsize"] = size
    if resume is None:
        ModelConfig(**model_opts)  # every check that needs no data, before processes are started
    dist = distributed.context_from_env()
    if nproc is not None and dist.enabled:
        raise SaganError("--nproc cannot be used inside torchrun (torchrun already started the processes); drop --nproc")
    if nproc is not None and nproc > 1:
        if device.startswith("cuda:") or device == "mps":
            raise SaganError(f"--nproc {nproc} with --device {device}: each process takes its own device; use --device cuda, cpu or auto")
        distributed.check_batch(batch, nproc)
        from sagan_cli.train.launch import launch_local, strip_nproc

        words = options.ARGV[options.ARGV.index("train") + 1 :] if "train" in options.ARGV else []
        code = launch_local(nproc, strip_nproc(words), runs, options.say)
        if code:
            raise typer.Exit(code)
        return
    if resume is not None and options.given(ctx, "name") == "COMMANDLINE":
        raise SaganError("--name names a new run; a resumed run goes on in its own directory (drop --name, "
                         "or copy the run directory to rename it)")
    if resume is not None and resume != "latest" and not Path(resume).exists():
        raise SaganError(f"--resume {resume}: no such checkpoint (use 'latest' or a path to a .pt file)")
    from sagan_cli.train.log import NullLogger, TrainLogger
    from sagan_cli.train.session import prepare_run

    if eval_every:  # before a run directory exists: a typo or a missing weights file costs nothing
        from sagan_cli.metrics.during_training import check

        check(eval_metrics, inception_weights)

    trainer = prepare_run(model_opts=model_opts, train_opts=train_opts, explicit=options.explicit(ctx) & (model_opts.keys() | train_opts.keys()),
                          resume=resume,
                          outdir=runs, data=data, device_spec=device, say=options.say, dist=dist,
                          dist_timeout=dist_timeout)
    logger = None
    try:
        if trainer.tcfg.eval_every:
            from sagan_cli.metrics.during_training import InTraining, parse_metrics

            trainer.attach_evaluator(InTraining(
                parse_metrics(trainer.tcfg.eval_metrics), trainer.dataset.path, trainer.tcfg.eval_num, str(trainer.device),
                num_real=min(trainer.tcfg.eval_num, len(trainer.dataset)), train_batch=trainer.tcfg.batch, cfg=trainer.mcfg, weights=inception_weights,
                standing=trainer.tcfg.standing_stats, warn=lambda text: options.say(f"warning: {text}")),
                trainer.tcfg.eval_every)
        if dist.is_main:
            logger = TrainLogger(trainer.run_dir, trainer.tcfg.steps, trainer.step, trainer.tcfg.tensorboard)
        else:
            logger = NullLogger()
        outcome = trainer.run(logger)
    finally:
        if logger is not None:
            logger.close()
        if trainer.run_lock is not None:
            trainer.run_lock.release()
    # Only after a clean finish: tearing down a group whose peer died can block (NCCL).
    distributed.shutdown()
    if not dist.is_main:
        raise typer.Exit(outcome.exit_code)
    if outcome.reason == "finished":
        options.say(f"finished at step {outcome.step}: run {outcome.run_dir}, checkpoint {outcome.checkpoint}")
    else:
        options.say(f"{outcome.reason} at step {outcome.step}: checkpoint {outcome.checkpoint}; "
                    f"continue with `sagan train --resume {outcome.checkpoint}`")
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)
