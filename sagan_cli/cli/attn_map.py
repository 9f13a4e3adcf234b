"""`sagan attn-map`: where each self-attention layer looks for the given query pixels."""

from __future__ import annotations

from pathlib import Path

import typer

from sagan_cli.cli import options
from sagan_cli.util.errors import SaganError

MAX_ATTN_SEEDS = 64  # one figure row per seed: beyond this the PNG stops being readable


def attn_map(
    ckpt: str | None = options.ckpt_argument(),
    query: list[str] = typer.Option(..., "--query", "-q", help="Query pixel ROW,COL of the generated image, 0-based, row first (repeatable)."),
    seed: int | None = typer.Option(None, min=0, help="One seed (default 0)."),
    seeds: str | None = typer.Option(None, help="Several seeds, e.g. 0-7 or 1,5,9: one row each."),
    layers: str = typer.Option("all", help="all | g | d | comma-separated layer names such as g16,d8.",
                               autocompletion=lambda incomplete: [f for f in ("all", "g", "d") if f.startswith(incomplete)]),
    ema: bool = options.ema_option(),
    out: Path = typer.Option(Path("attn-map.png"), help="PNG to write."),
    save_maps: Path | None = typer.Option(None, help="Also write the raw maps (float32) to this .npz file."),
    device: str = options.device_option(),
):
    """Show where each self-attention layer looks for the given query pixels."""
    from sagan_cli.util.device import validate_device_string

    validate_device_string(device)
    if seed is not None and seeds is not None:
        raise SaganError("--seed and --seeds conflict: give one of them")
    from sagan_cli.inspect import attention as attnmap
    from sagan_cli.util.device import resolve_device
    from sagan_cli.util.fsutil import check_writable
    from sagan_cli.inspect.sample import parse_seeds
    from sagan_cli.train.checkpoint import load_checkpoint
    from sagan_cli.train.runs import resolve_checkpoint_arg

    options.png_out(out)
    check_writable(out)
    if save_maps is not None:  # before any work: a failed command leaves no figure behind
        check_writable(save_maps, "--save-maps")
        if save_maps.suffix.lower() != ".npz":
            raise SaganError(f"--save-maps {save_maps}: the raw maps are written as a NumPy .npz archive, "
                             "give a file name ending in .npz")
    seed_list = parse_seeds(seeds) if seeds is not None else [seed or 0]
    if len(seed_list) > MAX_ATTN_SEEDS:
        raise SaganError(f"--seeds: {len(seed_list)} seeds, at most {MAX_ATTN_SEEDS} (one figure row each); split the range")
    queries = [attnmap.parse_query(q) for q in query]
    path = resolve_checkpoint_arg(ckpt)
    state = load_checkpoint(path)
    result = attnmap.attention_maps(state, queries, seed_list, layers, ema, resolve_device(device))
    target = attnmap.render(result, out)
    options.say(f"attention of {len(result.layers)} layer(s) for {len(queries)} query point(s) × {len(seed_list)} seed(s) from {path} → {target}")
    if save_maps is not None:
        options.say(f"raw maps → {attnmap.save_maps(result, save_maps)}")
