"""`sagan sample`: a grid, one PNG per seed, or an interpolation sheet or animation from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from sagan_cli.cli import options
from sagan_cli.util.errors import SaganError


def sample(
    ctx: typer.Context,
    ckpt: str | None = options.ckpt_argument(),
    num: int = options.num_option(64, "Number of images, seeds SEED..SEED+N-1 (with --interpolate: the seeds "
                                       "interpolated between, default 8).", min=1, max=100_000),
    seed: int = options.seed_option(0, "First seed: image i is drawn from seed SEED+i, as `sagan evaluate --seed` draws it."),
    seeds: str | None = typer.Option(None, help="Seeds to draw, e.g. 0-63 or 1,5,9 (one image per seed)."),
    out: Path | None = typer.Option(None, help="Grid PNG to write (default: samples.png); with --interpolate a PNG "
                                               "sheet (default: interpolation.png) or an animation ending in .gif or .webp."),
    outdir: Path | None = typer.Option(None, help="Write one PNG per image into this folder instead of a grid."),
    nrow: int | None = typer.Option(None, min=1, help="Images per grid row (default: square-ish; in an animation's "
                                                      "frame: all in one row)."),
    scale: int = options.scale_option("every image"),
    fps: float = options.fps_option(10.0),
    ema: bool = options.ema_option(),
    standing: bool = options.standing_option(),
    truncation: float | None = typer.Option(None, min=0.01, help="Truncation trick: redraw z entries with |z| > T."),
    interpolate: int | None = typer.Option(None, min=2, help="K-step slerp interpolations between consecutive seeds: a sheet, a "
                                                              "row each, or K frames with --out *.gif / *.webp."),
    batch: int = typer.Option(64, min=1, help="Images per forward pass."),
    runs: Path = options.runs_option(),
    device: str = options.device_option(),
):
    """Draw images from a checkpoint: a grid, one PNG per seed, or an interpolation sheet or animation."""
    from sagan_cli.util.device import validate_device_string

    validate_device_string(device)
    options.image_out(out, animation=interpolate is not None)
    animated = out is not None and out.suffix.lower() != ".png"
    if out is not None and outdir is not None:
        raise SaganError("--out and --outdir conflict: a grid goes to --out, one file per image to --outdir")
    if interpolate is not None and outdir is not None:
        raise SaganError("--interpolate writes one sheet: use --out, not --outdir")
    n_given = options.given(ctx, "num") == "COMMANDLINE"
    if n_given and seeds is not None:
        raise SaganError("--num and --seeds conflict: --num N draws seeds SEED..SEED+N-1, --seeds names them; give one of them")
    if options.given(ctx, "seed") == "COMMANDLINE" and seeds is not None:
        raise SaganError("--seed and --seeds conflict: --seed S starts the seeds at S, --seeds names them; give one of them")
    if options.given(ctx, "fps") == "COMMANDLINE" and not animated:
        raise SaganError("--fps sets the speed of an animation: it needs --interpolate K and --out ending in .gif or .webp")
    if interpolate is not None and nrow is not None and not animated:
        raise SaganError("--nrow has no effect with --interpolate (each row is one interpolation, --interpolate "
                         "images wide); drop --nrow")
    from sagan_cli.inspect import sample as core
    from sagan_cli.models.load import load_generator, model_config
    from sagan_cli.util.device import resolve_device
    from sagan_cli.util.images import check_output_size, grid, save_animation, save_png, upscale
    from sagan_cli.train.checkpoint import load_checkpoint
    from sagan_cli.train.runs import resolve_checkpoint_arg

    seed_list = core.parse_seeds(seeds) if seeds is not None else None
    path = resolve_checkpoint_arg(ckpt, runs)
    state = load_checkpoint(path)
    if interpolate is not None:
        seed_list = seed_list or list(range(seed, seed + (num if n_given else 8)))
    else:
        seed_list = seed_list or list(range(seed, seed + num))
    if scale > 1:  # before any drawing: what the upscaled images would take
        side = model_config(state).imsize
        count = (len(seed_list) - 1) * interpolate if interpolate is not None else len(seed_list)
        check_output_size(count, side, side, scale, ("images", "draw fewer images"))
    dev = resolve_device(device)
    G, cfg = load_generator(state, ema, dev, standing)
    if interpolate is not None:
        zs = core.interpolation_latents(seed_list, interpolate, cfg.z_dim, truncation)
        images = upscale(core.generate(G, zs, dev, batch), scale)
        if animated:
            target = save_animation(core.animation_frames(images, interpolate, nrow), out, fps)
            options.say(f"{len(seed_list) - 1} interpolations × {interpolate} steps from {path} → {target} "
                        f"({interpolate} frames at {fps:g} fps)")
            return
        target = save_png(grid(images, nrow=interpolate), out or Path("interpolation.png"))
        options.say(f"{len(seed_list) - 1} interpolations × {interpolate} steps from {path} → {target}")
        return
    images = upscale(core.generate(G, [core.latent(s, cfg.z_dim, truncation) for s in seed_list], dev, batch), scale)
    if outdir is not None:
        files = core.write_per_image(images, seed_list, outdir)
        options.say(f"{len(files)} images from {path} → {outdir}/ ({files[0].name} … {files[-1].name})")
    else:
        target = save_png(grid(images, nrow=nrow), out or Path("samples.png"))
        options.say(f"{len(images)} images from {path} (step {state['step']}, {'EMA' if ema else 'raw'} G) → {target}")
