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
    klass: str | None = options.class_option("Class(es) of a conditional checkpoint; several: one grid row per class "
                                             "(the same seeds in every row); with --interpolate, two or more walk "
                                             "from class to class at each seed's fixed z."),
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

    from sagan_cli.inspect import classes as cls

    seed_list = core.parse_seeds(seeds) if seeds is not None else None
    path = resolve_checkpoint_arg(ckpt, runs)
    state = load_checkpoint(path)
    k = model_config(state).num_classes
    names = cls.class_names(state, k)
    ids = cls.parse_classes(klass, names) if klass is not None else None
    walk = interpolate is not None and ids is not None and len(ids) > 1  # between classes at fixed z
    if ids is not None and len(ids) > 1 and interpolate is None and nrow is not None:
        raise SaganError("--nrow has no effect with several classes (one grid row per class, one column per seed); drop --nrow")
    if interpolate is not None:
        seed_list = seed_list or list(range(seed, seed + (num if n_given else 8)))
    else:
        seed_list = seed_list or list(range(seed, seed + (num if n_given or ids is None or len(ids) == 1 else 8)))
    if scale > 1:  # before any drawing: what the upscaled images would take
        side = model_config(state).imsize
        if walk:
            count = len(seed_list) * (len(ids) - 1) * interpolate
        elif interpolate is not None:
            count = (len(seed_list) - 1) * interpolate
        else:
            count = len(seed_list) * (len(ids) if ids else 1)
        check_output_size(count, side, side, scale, ("images", "draw fewer images"))
    if k and ids is None:
        options.say(cls.UNIFORM_NOTE)
    dev = resolve_device(device)
    G, cfg = load_generator(state, ema, dev, standing)
    what = f", {cls.describe(ids, names)}" if ids else ""
    if interpolate is not None:
        if walk:  # each seed's z fixed, the class weights walk a→b for every consecutive pair of classes
            import torch

            pairs = list(zip(ids[:-1], ids[1:]))
            zs = [core.latent(s, cfg.z_dim, truncation) for s in seed_list for _ in pairs for _ in range(interpolate)]
            ys = torch.cat([cls.class_weights(a, b, interpolate, k) for _ in seed_list for a, b in pairs])
            rows = len(seed_list) * len(pairs)
        else:
            zs = core.interpolation_latents(seed_list, interpolate, cfg.z_dim, truncation)
            rows = len(seed_list) - 1
            row_ids = [ids[0]] * rows if ids else (cls.uniform_labels(seed_list[:-1], k) if k else None)
            ys = [c for c in row_ids for _ in range(interpolate)] if row_ids else None
        images = upscale(core.generate(G, zs, dev, batch, ys), scale)
        kind = "class interpolations" if walk else "interpolations"
        if animated:
            target = save_animation(core.animation_frames(images, interpolate, nrow), out, fps)
            options.say(f"{rows} {kind} × {interpolate} steps{what} from {path} → {target} "
                        f"({interpolate} frames at {fps:g} fps)")
            return
        target = save_png(grid(images, nrow=interpolate), out or Path("interpolation.png"))
        options.say(f"{rows} {kind} × {interpolate} steps{what} from {path} → {target}")
        return
    zs = [core.latent(s, cfg.z_dim, truncation) for s in seed_list]
    per_class = ids is not None and len(ids) > 1
    if per_class:  # one row per class, the same seeds in every row
        ys = [c for c in ids for _ in seed_list]
        zs = zs * len(ids)
    else:
        ys = [ids[0]] * len(seed_list) if ids else (cls.uniform_labels(seed_list, k) if k else None)
    images = upscale(core.generate(G, zs, dev, batch, ys), scale)
    if outdir is not None:
        files = core.write_per_image(images, seed_list * (len(ids) if per_class else 1), outdir, ys if per_class else None)
        options.say(f"{len(files)} images{what} from {path} → {outdir}/ ({files[0].name} … {files[-1].name})")
    else:
        target = save_png(grid(images, nrow=len(seed_list) if per_class else nrow), out or Path("samples.png"))
        options.say(f"{len(images)} images{what} from {path} (step {state['step']}, {'EMA' if ema else 'raw'} G) → {target}")
