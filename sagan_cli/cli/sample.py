"""`sagan sample`: a grid, one PNG per seed, or an interpolation sheet from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from sagan_cli.cli import options
from sagan_cli.util.errors import SaganError


def sample(
    ctx: typer.Context,
    ckpt: str | None = options.ckpt_argument(),
    n: int = typer.Option(64, "--n", min=1, max=100_000,
                          help="Number of images, seeds 0..n-1 (with --interpolate: the seeds interpolated between, default 8)."),
    seeds: str | None = typer.Option(None, help="Seeds to draw, e.g. 0-63 or 1,5,9 (one image per seed)."),
    out: Path | None = typer.Option(None, help="Grid PNG to write (default: samples.png)."),
    outdir: Path | None = typer.Option(None, help="Write one PNG per image into this folder instead of a grid."),
    nrow: int | None = typer.Option(None, min=1, help="Images per grid row (default: square-ish)."),
    ema: bool = options.ema_option(),
    truncation: float | None = typer.Option(None, min=0.01, help="Truncation trick: redraw z entries with |z| > T."),
    interpolate: int | None = typer.Option(None, min=2, help="Sheet of K-step slerp interpolations between consecutive seeds."),
    batch: int = typer.Option(64, min=1, help="Images per forward pass."),
    device: str = options.device_option(),
):
    """Draw images from a checkpoint: a grid, one PNG per seed, or an interpolation sheet."""
    from sagan_cli.util.device import validate_device_string

    validate_device_string(device)
    options.png_out(out)
    if out is not None and outdir is not None:
        raise SaganError("--out and --outdir conflict: a grid goes to --out, one file per image to --outdir")
    if interpolate is not None and outdir is not None:
        raise SaganError("--interpolate writes one sheet: use --out, not --outdir")
    n_given = options.given(ctx, "n") == "COMMANDLINE"
    if n_given and seeds is not None:
        raise SaganError("--n and --seeds conflict: --n N draws seeds 0..N-1, --seeds names them; give one of them")
    if interpolate is not None and nrow is not None:
        raise SaganError("--nrow has no effect with --interpolate (each row is one interpolation, --interpolate "
                         "images wide); drop --nrow")
    from sagan_cli.inspect import sample as core
    from sagan_cli.models.load import load_generator
    from sagan_cli.util.device import resolve_device
    from sagan_cli.util.images import grid, save_png
    from sagan_cli.train.checkpoint import load_checkpoint
    from sagan_cli.train.runs import resolve_checkpoint_arg

    seed_list = core.parse_seeds(seeds) if seeds is not None else None
    path = resolve_checkpoint_arg(ckpt)
    state = load_checkpoint(path)
    dev = resolve_device(device)
    G, cfg = load_generator(state, ema, dev)
    if interpolate is not None:
        seed_list = seed_list or list(range(n if n_given else 8))
        zs = core.interpolation_latents(seed_list, interpolate, cfg.z_dim, truncation)
        images = core.generate(G, zs, dev, batch)
        target = save_png(grid(images, nrow=interpolate), out or Path("interpolation.png"))
        options.say(f"{len(seed_list) - 1} interpolations × {interpolate} steps from {path} → {target}")
        return
    seed_list = seed_list or list(range(n))
    images = core.generate(G, [core.latent(s, cfg.z_dim, truncation) for s in seed_list], dev, batch)
    if outdir is not None:
        files = core.write_per_image(images, seed_list, outdir)
        options.say(f"{len(files)} images from {path} → {outdir}/ ({files[0].name} … {files[-1].name})")
    else:
        target = save_png(grid(images, nrow=nrow), out or Path("samples.png"))
        options.say(f"{len(images)} images from {path} (step {state['step']}, {'EMA' if ema else 'raw'} G) → {target}")
