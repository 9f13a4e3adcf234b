"""`sagan attn-map`: where each self-attention layer looks for the given query pixels (a PNG figure), or for
every pixel (``--html``: an interactive page)."""

from __future__ import annotations

from pathlib import Path

import typer

from sagan_cli.cli import options
from sagan_cli.util.errors import SaganError

MAX_ATTN_SEEDS = 64  # one figure row per seed: beyond this the PNG stops being readable


def attn_map(
    ckpt: str | None = options.ckpt_argument(),
    query: list[str] | None = typer.Option(None, "--query", "-q", help="Query pixel ROW,COL of the generated image, "
                                           "0-based, row first (repeatable; with --html optional: the page's first query)."),
    seed: int | None = options.seed_option(None, "The seed of the one image (default 0)."),
    seeds: str | None = typer.Option(None, help="Several seeds, e.g. 0-7 or 1,5,9: one row each."),
    layers: str = typer.Option("all", help="all | g | d | comma-separated layer names such as g16,d8.",
                               autocompletion=lambda incomplete: [f for f in ("all", "g", "d") if f.startswith(incomplete)]),
    klass: str | None = options.class_option("The class of a conditional checkpoint's images (one; D gets it too)."),
    ema: bool = options.ema_option(),
    standing: bool = options.standing_option(),
    out: Path | None = typer.Option(None, help="PNG figure of the --query pixels (default: attn-map.png; with --html "
                                              "only when given)."),
    html: Path | None = typer.Option(None, help="Write one self-contained HTML page: every pixel's attention in every "
                                                "layer, shown as the pointer moves over the image."),
    save_maps: Path | None = typer.Option(None, help="Also write the raw maps (float32) to this .npz file."),
    runs: Path = options.runs_option(),
    device: str = options.device_option(),
):
    """Show where each self-attention layer looks for the given query pixels, or for every pixel (--html)."""
    from sagan_cli.util.device import validate_device_string

    validate_device_string(device)
    if not query and html is None:
        raise SaganError("Missing option '--query' / '-q': give a query pixel ROW,COL, or --html FILE for a page "
                         "of every pixel's attention")
    if seed is not None and seeds is not None:
        raise SaganError("--seed and --seeds conflict: give one of them")
    if html is not None and html.suffix.lower() not in (".html", ".htm"):
        raise SaganError(f"--html {html}: the page is written as HTML, give a file name ending in .html")
    if not query and out is not None:
        raise SaganError("--out writes the figure of the --query pixels: give --query ROW,COL too (the --html page needs none)")
    if not query and save_maps is not None:
        raise SaganError("--save-maps writes the maps of the --query pixels: give --query ROW,COL too")
    from sagan_cli.inspect import attention as attnmap
    from sagan_cli.util.device import resolve_device
    from sagan_cli.util.fsutil import check_writable
    from sagan_cli.inspect.sample import parse_seeds
    from sagan_cli.train.checkpoint import load_checkpoint
    from sagan_cli.train.runs import resolve_checkpoint_arg

    figure = (out or Path("attn-map.png")) if query and (out is not None or html is None) else None
    if figure is not None:
        options.png_out(figure)
        check_writable(figure)
    if html is not None:
        check_writable(html, "--html")
    if save_maps is not None:  # before any work: a failed command leaves no figure behind
        check_writable(save_maps, "--save-maps")
        if save_maps.suffix.lower() != ".npz":
            raise SaganError(f"--save-maps {save_maps}: the raw maps are written as a NumPy .npz archive, "
                             "give a file name ending in .npz")
    seed_list = parse_seeds(seeds) if seeds is not None else [seed or 0]
    if len(seed_list) > MAX_ATTN_SEEDS:
        raise SaganError(f"--seeds: {len(seed_list)} seeds, at most {MAX_ATTN_SEEDS} (one figure row each); split the range")
    queries = [attnmap.parse_query(q) for q in query or []]
    path = resolve_checkpoint_arg(ckpt, runs)
    state = load_checkpoint(path)
    from sagan_cli.inspect import classes as cls
    from sagan_cli.models.load import model_config

    k = model_config(state).num_classes
    class_id = None
    if klass is not None:
        ids = cls.parse_classes(klass, cls.class_names(state, k))
        if len(ids) != 1:
            raise SaganError(f"--class {klass}: attn-map draws its seeds in one class; give one (run it once per class)")
        class_id = ids[0]
    elif k:
        options.say(cls.UNIFORM_NOTE)
    if layers == "all" and state.get("D") is None:  # an exported generator (sagan export): G's layers are all there is
        layers = "g"
    page = None
    if html is not None:
        from sagan_cli.inspect import page as attnpage
        from sagan_cli.models import layer_names

        cfg = model_config(state)
        attnmap.check_queries(queries, cfg.imsize)
        chosen = attnmap.select_layers(layers, layer_names(cfg.g_attn, cfg.d_attn))
        attnpage.check_size(chosen, cfg.attention, len(seed_list))
        page = attnpage.PageMaps()
    result = attnmap.attention_maps(state, queries, seed_list, layers, ema, resolve_device(device), standing, page, class_id)
    if figure is not None:
        target = attnmap.render(result, figure)
        options.say(f"attention of {len(result.layers)} layer(s) for {len(queries)} query point(s) × {len(seed_list)} seed(s) from {path} → {target}")
    if page is not None:
        target = attnpage.write_page(result, page, html, source=path.name)
        options.say(f"attention page of {len(result.layers)} layer(s) × {options.count(len(seed_list), 'seed')}, every "
                    f"pixel, from {path} → {target} ({target.stat().st_size / 2**20:.1f} MiB)")
    if save_maps is not None:
        options.say(f"raw maps → {attnmap.save_maps(result, save_maps)}")
