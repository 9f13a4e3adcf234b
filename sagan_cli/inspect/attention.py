"""Attention maps for query pixels: which key cells each self-attention layer looks at.

For a layer at feature-map resolution r in an S×S image, the query pixel (ROW, COL) falls in
the cell (ROW·r // S, COL·r // S); its row of the attention matrix (N = r² weights, or r²/4
in the ``official`` form, whose keys are max-pooled 2×2) reshaped to the key grid is the map.
G layers are read while G draws the image; D layers while D judges that same image (G's float
output, not re-quantised). Both networks run in eval mode on the explicit attention path,
which returns the softmax weights (rows sum to 1). Drawing is in ``attnmap_render``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sagan_cli.util.errors import SaganError

_QUERY = re.compile(r"^\s*(\d+)\s*,\s*(\d+)\s*$")
BATCH = 8  # seeds per forward pass: the N×M matrices of a 64² layer are 64 MiB per image


@dataclass
class AttentionMaps:
    """Everything ``render`` and ``save_maps`` need; arrays are on the CPU."""

    imsize: int
    form: str  # "paper" | "official"
    seeds: list[int]
    queries: list[tuple[int, int]]  # (row, col) pixels of the generated image
    layers: list[str]  # g16, g32, d8 ... in the order drawn
    resolutions: dict[str, int]  # layer -> r (its feature map is r×r)
    key_grids: dict[str, tuple[int, int]]  # layer -> (rows, cols) of its key grid
    cells: dict[str, list[tuple[int, int]]]  # layer -> the query cell (row, col) at r, per query
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> float32 seeds×queries×kh×kw
    gammas: dict[str, float] = field(default_factory=dict)  # layer -> γ, how much its attention output counts
    images: np.ndarray | None = None  # uint8 seeds×S×S×3
    step: int | None = None
    ema: bool = True


def parse_query(text: str) -> tuple[int, int]:
    """'12,40' → (12, 40): a pixel of the generated image, 0-based, row first."""
    m = _QUERY.match(text)
    if not m:
        raise SaganError(f"--query {text!r}: expected ROW,COL as two non-negative integers, e.g. --query 12,40")
    return int(m.group(1)), int(m.group(2))


def check_queries(queries: list[tuple[int, int]], imsize: int) -> None:
    for row, col in queries:
        if row >= imsize or col >= imsize:
            raise SaganError(
                f"--query {row},{col} is outside the {imsize}x{imsize} generated image "
                f"(rows and columns run 0..{imsize - 1})"
            )


def query_cell(row: int, col: int, res: int, imsize: int) -> tuple[int, int]:
    """The cell of an r×r feature map that holds image pixel (row, col)."""
    return row * res // imsize, col * res // imsize


def select_layers(spec: str, available: list[str]) -> list[str]:
    """``all`` | ``g`` | ``d`` | ``g16,d8`` → layer names (order of ``available`` for groups, as given for lists)."""
    if not available:
        raise SaganError(
            "this checkpoint's model has no attention layers (trained with --g-attn none --d-attn none): nothing to map"
        )
    names = ", ".join(available)
    tokens = [t.strip().lower() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise SaganError(f"--layers {spec!r}: give all, g, d or layer names (available: {names})")
    chosen: list[str] = []
    for tok in tokens:
        if tok == "all":
            group = available
        elif tok in ("g", "d"):
            group = [n for n in available if n[0] == tok]
            if not group:
                net = "generator" if tok == "g" else "discriminator"
                raise SaganError(f"--layers {tok}: this checkpoint's {net} has no attention layers (available: {names})")
        elif tok in available:
            group = [tok]
        else:
            raise SaganError(f"--layers: no attention layer named {tok!r} in this checkpoint (available: {names})")
        chosen.extend(n for n in group if n not in chosen)
    return chosen


def attention_maps(state: dict, queries, seeds, layers: str, ema: bool, device, standing: bool = False,
                   on_weights=None, klass: int | None = None) -> AttentionMaps:
    """Run G (and D, if D layers are asked for) per seed and cut out each query's attention row.

    A conditional model draws every seed's image of class ``klass``, or of the seed's uniform class
    (inspect/classes.py) when None; D sees the same labels.

    ``on_weights(layer, beta)``, if given, also sees every layer's whole B×N×M matrix of each batch of seeds, in
    seed order (the attention page keeps every query's row: ``inspect/page.py``)."""
    import torch

    from sagan_cli.inspect.sample import latent
    from sagan_cli.models import attention_layers, layer_names
    from sagan_cli.models.load import load_discriminator, load_generator, model_config
    from sagan_cli.util.images import to_uint8

    cfg = model_config(state)
    check_queries(queries, cfg.imsize)
    names = select_layers(layers, layer_names(cfg.g_attn, cfg.d_attn))
    G, cfg = load_generator(state, ema, device, standing)
    D = load_discriminator(state, cfg, device) if any(n[0] == "d" for n in names) else None
    modules = attention_layers(G, D)
    res = {n: int(n[1:]) for n in names}
    grids = {n: modules[n].key_grid(res[n], res[n]) for n in names}
    cells = {n: [query_cell(r, c, res[n], cfg.imsize) for r, c in queries] for n in names}
    result = AttentionMaps(
        imsize=cfg.imsize, form=cfg.attention, seeds=list(seeds), queries=list(queries), layers=names,
        resolutions=res, key_grids=grids, cells=cells, step=state.get("step"), ema=ema,
        gammas={n: float(modules[n].gamma) for n in names},
    )

    from sagan_cli.inspect.classes import uniform_labels

    labels = None
    if cfg.num_classes:
        labels = torch.tensor([klass] * len(seeds) if klass is not None else uniform_labels(seeds, cfg.num_classes))
    per_layer: dict[str, list[np.ndarray]] = {n: [] for n in names}
    images = []
    with torch.no_grad():
        for start in range(0, len(seeds), BATCH):
            z = torch.stack([latent(s, cfg.z_dim) for s in seeds[start : start + BATCH]]).to(device)
            y = () if labels is None else (labels[start : start + BATCH].to(device),)
            weights: dict = {}
            img = G(z, *y, attn_weights=weights)
            if D is not None:
                D(img, *y, attn_weights=weights)
            images.append(to_uint8(img))
            for n in names:
                kh, kw = grids[n]
                beta = weights[n]  # B×N×M, N = r² queries in row-major order
                if on_weights is not None:
                    on_weights(n, beta)
                idx = torch.tensor([r * res[n] + c for r, c in cells[n]], dtype=torch.long, device=beta.device)
                rows = beta.index_select(1, idx)  # B×Q×M
                per_layer[n].append(rows.reshape(rows.shape[0], len(queries), kh, kw).float().cpu().numpy())
    result.maps = {n: np.concatenate(v).astype(np.float32, copy=False) for n, v in per_layer.items()}
    result.images = np.concatenate(images)
    return result


def render(result: AttentionMaps, out: str | Path) -> Path:
    """Write the figure PNG (a row per seed: image with the queries, then a panel per layer and query)."""
    from sagan_cli.inspect.figure import figure
    from sagan_cli.util.images import save_png

    return save_png(figure(result), out)


def map_key(layer: str, q: int) -> str:
    return f"map_{layer}_q{q}"


def save_maps(result: AttentionMaps, path: str | Path) -> Path:
    """Raw maps and their coordinates as an .npz (no pickled objects; see docs/attn-map.md for the keys)."""
    from sagan_cli.util.fsutil import atomic_open, write_error

    arrays: dict[str, np.ndarray] = {
        "imsize": np.array(result.imsize, np.int64),
        "attention_form": np.array(result.form),
        "seeds": np.array(result.seeds, np.int64),
        "queries": np.array(result.queries, np.int64).reshape(-1, 2),
        "layers": np.array(result.layers),
        "resolutions": np.array([result.resolutions[n] for n in result.layers], np.int64),
        "key_grids": np.array([result.key_grids[n] for n in result.layers], np.int64).reshape(-1, 2),
        "gammas": np.array([result.gammas.get(n, np.nan) for n in result.layers], np.float32),
        "cells": np.array([result.cells[n] for n in result.layers], np.int64).reshape(len(result.layers), -1, 2),
        "images": result.images,
    }
    for n in result.layers:
        for q in range(len(result.queries)):
            arrays[map_key(n, q)] = np.ascontiguousarray(result.maps[n][:, q])
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as fh:
            np.savez(fh, **arrays)
    except OSError as exc:
        raise write_error(path, exc, "--save-maps") from None
    return path
