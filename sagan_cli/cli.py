"""The `sagan` command line: parse, validate, call the core. Nothing heavy at import time."""

from __future__ import annotations

import re
import sys
from enum import Enum
from pathlib import Path

import typer

from sagan_cli.errors import SaganError
from sagan_cli.evaluate_cli import evaluate as evaluate_command
from sagan_cli.prepare_cli import prepare_app

app = typer.Typer(
    name="sagan",
    help="Train, sample, inspect and evaluate Self-Attention GANs (Zhang et al. 2018).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(prepare_app, name="prepare")
app.command("evaluate")(evaluate_command)


def _click():
    try:  # Typer >= 0.2x ships its own copy of Click
        from typer import _click as click
    except ImportError:  # pragma: no cover - older Typer on real Click
        import click
    return click


PEER_LOST = 4  # sagan_cli.train.distributed.EXIT_PEER_LOST (not imported here: it imports torch)
_ARGV: list[str] = []  # the words after `sagan`, for `train --nproc` to hand on to its processes


def _rank_prefix() -> str:
    """'rank N: ' inside a multi-process job, so each process's error says who it is."""
    import os

    if os.environ.get("WORLD_SIZE", "1") not in ("", "1") and "RANK" in os.environ:
        return f"rank {os.environ['RANK']}: "
    return ""


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user error becomes one line on stderr and a non-zero exit."""
    click = _click()
    _ARGV[:] = sys.argv[1:] if argv is None else list(argv)
    try:
        rv = app(args=argv, prog_name="sagan", standalone_mode=False)
    except SaganError as exc:
        print(f"error: {_rank_prefix()}{exc}", file=sys.stderr)
        if exc.exit_code == PEER_LOST:  # a broken process group can abort at interpreter shutdown
            from sagan_cli.train.distributed import exit_now

            exit_now(exc.exit_code)
        sys.exit(exc.exit_code)
    except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:  # bare `sagan`: show help
        print(exc.format_message())
        sys.exit(0)
    except click.ClickException as exc:
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see `{ctx.command_path} --help`)"
        # one line: Click lays some messages out over several (a choice list, one item a line)
        message = re.sub(r"\s*\n\s*", " ", exc.format_message().strip())
        print(f"error: {message}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    if rv == 130:  # Typer turns a Ctrl-C that no command handled into a silent Exit(130)
        print("error: interrupted", file=sys.stderr)
    sys.exit(rv if isinstance(rv, int) else 0)


# --------------------------------------------------------------------------- helpers
class Attention(str, Enum):
    paper = "paper"
    official = "official"


DEVICE_OPT = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N | mps (auto: CUDA, then MPS, then CPU).")


def _parse_resolutions(value: str | None, flag: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if value.strip().lower() in ("", "none"):
        return ()
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise SaganError(f"{flag} {value!r}: expected a comma-separated list of feature-map sizes, e.g. 16,32, or 'none'") from None


MAX_ATTN_SEEDS = 64  # one figure row per seed: beyond this the PNG stops being readable


def _png_out(path: Path | None, flag: str = "--out") -> Path | None:
    if path is not None and path.suffix.lower() != ".png":
        raise SaganError(f"{flag} {path}: output is written as PNG, give a file name ending in .png")
    return path


def _say(text: str) -> None:
    from rich.console import Console

    Console(highlight=False, soft_wrap=True).print(text, markup=False)


# --------------------------------------------------------------------------- train
@app.command()
def train(
    ctx: typer.Context,
    imsize: int = typer.Option(64, help="Image size: 32, 64, 128 or 256."),
    data: Path | None = typer.Option(None, help="Prepared dataset directory (default: newest with this --imsize under ./data)."),
    steps: int = typer.Option(100_000, min=1, help="Train until this many G steps in total."),
    batch: int = typer.Option(64, min=1, help="Global batch size (images per D and per G step, split over processes)."),
    outdir: Path = typer.Option(Path("runs"), help="Parent directory of run directories."),
    name: str | None = typer.Option(None, help="Run name (default: the dataset's directory name)."),
    resume: str | None = typer.Option(None, help="Continue a run: 'latest' (newest run under --outdir) or a checkpoint path."),
    device: str = DEVICE_OPT,
    seed: int = typer.Option(0, min=0, help="Seed for weights, noise and data order."),
    log_every: int = typer.Option(100, min=1, help="Log metrics every N steps."),
    sample_every: int = typer.Option(1000, min=1, help="Write a sample grid every N steps."),
    ckpt_every: int = typer.Option(1000, min=1, help="Write a checkpoint every N steps."),
    keep_ckpts: int = typer.Option(5, min=1, help="Keep the newest K step checkpoints (plus latest.pt)."),
    n_samples: int = typer.Option(64, min=1, help="Images in each sample grid (fixed z)."),
    attention: Attention = typer.Option(Attention.paper, help="Attention block: 'paper' (as in the paper) or 'official' (authors' code)."),
    g_attn: str | None = typer.Option(None, help="G feature-map sizes that get attention, e.g. 16,32, or none (default: by imsize; 16,32 at 64px)."),
    d_attn: str | None = typer.Option(None, help="D feature-map sizes that get attention, e.g. 8,4, or none (default: by imsize; 8,4 at 64px)."),
    z_dim: int = typer.Option(128, min=1, help="Latent size."),
    g_conv_dim: int = typer.Option(64, min=1, help="G base width (channels at the last block)."),
    d_conv_dim: int = typer.Option(64, min=1, help="D base width (channels at the first block)."),
    lr_g: float = typer.Option(1e-4, help="G learning rate (TTUR)."),
    lr_d: float = typer.Option(4e-4, help="D learning rate (TTUR)."),
    beta1: float = typer.Option(0.0, help="Adam beta1."),
    beta2: float = typer.Option(0.9, help="Adam beta2."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Keep an exponential moving average of G."),
    ema_decay: float = typer.Option(0.999, help="EMA decay per step."),
    ema_start: int = typer.Option(1000, min=0, help="Steps before the EMA starts averaging (it copies G until then)."),
    amp: bool = typer.Option(True, "--amp/--no-amp", help="bf16 autocast on CUDA (no effect on CPU)."),
    compile: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile G and D (default: on for CUDA, off otherwise)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also log to TensorBoard (needs the tensorboard package)."),
    nproc: int | None = typer.Option(None, min=1, help="Train with N processes on this machine (one per GPU; gloo on CPU), as torchrun does."),
    sync_bn: bool = typer.Option(True, "--sync-bn/--no-sync-bn", help="With several processes: G's BatchNorm statistics over the global batch."),
    dist_timeout: int = typer.Option(600, min=10, help="With several processes: seconds a rank waits for the others before giving up."),
):
    """Train a SAGAN on a prepared dataset; Ctrl-C saves a checkpoint and exits 0."""
    from sagan_cli.device import validate_device_string
    from sagan_cli.train import distributed

    validate_device_string(device)
    dist = distributed.context_from_env()
    if nproc is not None and dist.enabled:
        raise SaganError("--nproc cannot be used inside torchrun (torchrun already started the processes); drop --nproc")
    if nproc is not None and nproc > 1:
        if device.startswith("cuda:") or device == "mps":
            raise SaganError(f"--nproc {nproc} with --device {device}: each process takes its own device; use --device cuda, cpu or auto")
        distributed.check_batch(batch, nproc)
        from sagan_cli.train.launch import launch_local, strip_nproc

        words = _ARGV[_ARGV.index("train") + 1 :] if "train" in _ARGV else []
        code = launch_local(nproc, strip_nproc(words), outdir, _say)
        if code:
            raise typer.Exit(code)
        return
    if resume is not None and resume != "latest" and not Path(resume).exists():
        raise SaganError(f"--resume {resume}: no such checkpoint (use 'latest' or a path to a .pt file)")
    model_opts = dict(imsize=imsize, z_dim=z_dim, g_conv_dim=g_conv_dim, d_conv_dim=d_conv_dim,
                      g_attn=_parse_resolutions(g_attn, "--g-attn"), d_attn=_parse_resolutions(d_attn, "--d-attn"),
                      attention=attention.value)
    train_opts = dict(steps=steps, batch=batch, lr_g=lr_g, lr_d=lr_d, beta1=beta1, beta2=beta2, ema=ema,
                      ema_decay=ema_decay, ema_start=ema_start, amp=amp, compile=compile, seed=seed,
                      log_every=log_every, sample_every=sample_every, ckpt_every=ckpt_every,
                      keep_ckpts=keep_ckpts, n_samples=n_samples, name=name or "", tensorboard=tensorboard,
                      sync_bn=sync_bn)
    explicit = {p for p in list(model_opts) + list(train_opts) if _from_command_line(ctx, p)}
    from sagan_cli.train.logger import NullLogger, TrainLogger
    from sagan_cli.train.session import prepare_run

    trainer = prepare_run(model_opts=model_opts, train_opts=train_opts, explicit=explicit, resume=resume,
                          outdir=outdir, data=data, device_spec=device, say=_say, dist=dist,
                          dist_timeout=dist_timeout)
    if dist.is_main:
        logger = TrainLogger(trainer.run_dir, trainer.tcfg.steps, trainer.step, trainer.tcfg.tensorboard)
    else:
        logger = NullLogger()
    try:
        outcome = trainer.run(logger)
    finally:
        logger.close()
    # Only after a clean finish: tearing down a group whose peer died can block (NCCL).
    distributed.shutdown()
    if not dist.is_main:
        raise typer.Exit(outcome.exit_code)
    if outcome.reason == "finished":
        _say(f"finished at step {outcome.step}: run {outcome.run_dir}, checkpoint {outcome.checkpoint}")
    else:
        _say(f"{outcome.reason} at step {outcome.step}: checkpoint {outcome.checkpoint}; "
             f"continue with `sagan train --resume {outcome.checkpoint}`")
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def _from_command_line(ctx, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


# --------------------------------------------------------------------------- sample
@app.command()
def sample(
    ckpt: str | None = typer.Argument(None, help="Checkpoint file or run directory (default: newest run's latest.pt under ./runs)."),
    n: int = typer.Option(64, "--n", min=1, max=100_000, help="Number of images (seeds 0..n-1) when --seeds is not given."),
    seeds: str | None = typer.Option(None, help="Seeds to draw, e.g. 0-63 or 1,5,9 (one image per seed)."),
    out: Path | None = typer.Option(None, help="Grid PNG to write (default: samples.png)."),
    outdir: Path | None = typer.Option(None, help="Write one PNG per image into this folder instead of a grid."),
    nrow: int | None = typer.Option(None, min=1, help="Images per grid row (default: square-ish)."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Use the EMA generator (if the checkpoint has one)."),
    truncation: float | None = typer.Option(None, min=0.01, help="Truncation trick: redraw z entries with |z| > T."),
    interpolate: int | None = typer.Option(None, min=2, help="Sheet of K-step slerp interpolations between consecutive seeds."),
    batch: int = typer.Option(64, min=1, help="Images per forward pass."),
    device: str = DEVICE_OPT,
):
    """Draw images from a checkpoint: a grid, one PNG per seed, or an interpolation sheet."""
    from sagan_cli.device import validate_device_string

    validate_device_string(device)
    _png_out(out)
    if out is not None and outdir is not None:
        raise SaganError("--out and --outdir conflict: a grid goes to --out, one file per image to --outdir")
    if interpolate is not None and outdir is not None:
        raise SaganError("--interpolate writes one sheet: use --out, not --outdir")
    from sagan_cli import sample as core
    from sagan_cli.device import resolve_device
    from sagan_cli.images import grid, save_png
    from sagan_cli.train.checkpoint import load_checkpoint, resolve_checkpoint_arg

    seed_list = core.parse_seeds(seeds) if seeds is not None else None
    path = resolve_checkpoint_arg(ckpt)
    state = load_checkpoint(path)
    dev = resolve_device(device)
    G, cfg = core.load_generator(state, ema, dev)
    if interpolate is not None:
        seed_list = seed_list or list(range(8))
        zs = core.interpolation_latents(seed_list, interpolate, cfg.z_dim, truncation)
        images = core.generate(G, zs, dev, batch)
        target = save_png(grid(images, nrow=interpolate), out or Path("interpolation.png"))
        _say(f"{len(seed_list) - 1} interpolations × {interpolate} steps from {path} → {target}")
        return
    seed_list = seed_list or list(range(n))
    images = core.generate(G, [core.latent(s, cfg.z_dim, truncation) for s in seed_list], dev, batch)
    if outdir is not None:
        files = core.write_per_image(images, seed_list, outdir)
        _say(f"{len(files)} images from {path} → {outdir}/ ({files[0].name} … {files[-1].name})")
    else:
        target = save_png(grid(images, nrow=nrow), out or Path("samples.png"))
        _say(f"{len(images)} images from {path} (step {state['step']}, {'EMA' if ema else 'raw'} G) → {target}")


# --------------------------------------------------------------------------- attn-map
@app.command("attn-map")
def attn_map(
    ckpt: str | None = typer.Argument(None, help="Checkpoint file or run directory (default: newest run's latest.pt under ./runs)."),
    query: list[str] = typer.Option(..., "--query", "-q", help="Query pixel ROW,COL of the generated image, 0-based, row first (repeatable)."),
    seed: int | None = typer.Option(None, min=0, help="One seed (default 0)."),
    seeds: str | None = typer.Option(None, help="Several seeds, e.g. 0-7 or 1,5,9: one row each."),
    layers: str = typer.Option("all", help="all | g | d | comma-separated layer names such as g16,d8."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Use the EMA generator (if the checkpoint has one)."),
    out: Path = typer.Option(Path("attn-map.png"), help="PNG to write."),
    save_maps: Path | None = typer.Option(None, help="Also write the raw maps (float32) to this .npz file."),
    device: str = DEVICE_OPT,
):
    """Show where each self-attention layer looks for the given query pixels."""
    from sagan_cli.device import validate_device_string

    validate_device_string(device)
    if seed is not None and seeds is not None:
        raise SaganError("--seed and --seeds conflict: give one of them")
    from sagan_cli import attnmap
    from sagan_cli.device import resolve_device
    from sagan_cli.fsutil import check_writable
    from sagan_cli.sample import parse_seeds
    from sagan_cli.train.checkpoint import load_checkpoint, resolve_checkpoint_arg

    _png_out(out)
    check_writable(out)
    if save_maps is not None:  # before any work: a failed command leaves no figure behind
        check_writable(save_maps, "--save-maps")
    seed_list = parse_seeds(seeds) if seeds is not None else [seed or 0]
    if len(seed_list) > MAX_ATTN_SEEDS:
        raise SaganError(f"--seeds: {len(seed_list)} seeds, at most {MAX_ATTN_SEEDS} (one figure row each); split the range")
    queries = [attnmap.parse_query(q) for q in query]
    path = resolve_checkpoint_arg(ckpt)
    state = load_checkpoint(path)
    result = attnmap.attention_maps(state, queries, seed_list, layers, ema, resolve_device(device))
    target = attnmap.render(result, out)
    _say(f"attention of {len(result.layers)} layer(s) for {len(queries)} query point(s) × {len(seed_list)} seed(s) from {path} → {target}")
    if save_maps is not None:
        _say(f"raw maps → {attnmap.save_maps(result, save_maps)}")
