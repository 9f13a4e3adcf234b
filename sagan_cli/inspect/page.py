"""The attention page of ``sagan attn-map --html``: one self-contained HTML file, every query pixel's attention.

For each attention layer at resolution r the page holds, per seed, the whole attention matrix: r² query
cells, each a row of M key weights (M = r², or r²/4 in the official form). Each row is quantised on its own
to uint8, q = round(255·w / max(row)) — what the page draws is the heat scaled to the panel's max, as in the
PNG figure — and kept with that max (float32) and the index of its largest weight (uint16, from the float
weights, so the page's ``data-argmax`` is exact where the quantised row has ties). The three arrays of a
(layer, seed) are one zlib stream, base64 in a JSON block; the page inflates them with the browser's own
``DecompressionStream``. The matrices come from ``attention.attention_maps``'s ``on_weights`` hook: the very
forward pass whose query rows ``--save-maps`` writes. The page's script and style are inline in
``attention_page.html`` (package data): no network, no server. Format: docs/attn-map.md, docs/decisions.md.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from pathlib import Path

import numpy as np

from sagan_cli.util.errors import SaganError

TEMPLATE = "attention_page.html"
MAX_MAP_BYTES = 64 << 20  # quantised weights a page may embed (before compression): beyond, browsers crawl
ZLIB_LEVEL = 6


def matrix_bytes(resolution: int, form: str) -> int:
    """uint8 bytes of one layer's whole attention matrix for one seed: r² queries × M keys."""
    keys = (resolution // 2) ** 2 if form == "official" else resolution ** 2
    return resolution ** 2 * keys


def check_size(layers: list[str], form: str, seeds: int) -> int:
    """The quantised bytes the page will hold, or a one-line error naming the biggest layer when too many."""
    sizes = {n: matrix_bytes(int(n[1:]), form) for n in layers}
    total = sum(sizes.values()) * seeds
    if total > MAX_MAP_BYTES:
        big = max(sizes, key=sizes.get)
        r = int(big[1:])
        raise SaganError(
            f"--html: the page would hold {total / 2**20:.1f} MiB of attention weights (layer {big}: {r * r} query cells "
            f"× {sizes[big] // (r * r)} keys per seed, {seeds} seed(s)), more than the "
            f"{MAX_MAP_BYTES >> 20} MiB a browser handles well; give fewer --seeds or leave big layers out with --layers")
    return total


class PageMaps:
    """``on_weights`` for ``attention_maps``: every layer's matrices of each batch, quantised and packed per seed."""

    def __init__(self) -> None:
        self.blobs: dict[str, list[str]] = {}

    def __call__(self, layer: str, beta) -> None:
        w = beta.float().cpu().numpy()  # B×N×M, rows sum to 1
        peak = w.max(axis=2)
        top = w.argmax(axis=2)  # the first of equal maxima, as NumPy's argmax of a --save-maps map
        if w.shape[2] > np.iinfo(np.uint16).max:
            raise SaganError(f"layer {layer}: {w.shape[2]} keys, more than the page's uint16 indices hold")
        q = np.rint(w / np.maximum(peak, np.finfo(np.float32).tiny)[..., None] * 255).astype(np.uint8)
        for b in range(w.shape[0]):
            raw = q[b].tobytes() + peak[b].astype("<f4").tobytes() + top[b].astype("<u2").tobytes()
            self.blobs.setdefault(layer, []).append(base64.b64encode(zlib.compress(raw, ZLIB_LEVEL)).decode("ascii"))


def _png_uri(image: np.ndarray) -> str:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def page_data(result, maps: PageMaps, source: str = "") -> dict:
    """The JSON the page's script reads (its format: docs/attn-map.md)."""
    from sagan_cli.inspect.figure import ALPHA, RAMP_POS, RAMP_RGB

    return {
        "format": "sagan-attention-page", "version": 1,
        "imsize": result.imsize, "form": result.form, "step": result.step, "ema": result.ema, "source": source,
        "seeds": list(result.seeds),
        "images": [_png_uri(img) for img in result.images],
        "query": list(result.queries[0]) if result.queries else None,
        "ramp": [[float(p), *map(float, rgb)] for p, rgb in zip(RAMP_POS, RAMP_RGB)], "alpha": ALPHA,
        "layers": [{"name": n, "net": n[0].upper(), "res": result.resolutions[n], "keys": list(result.key_grids[n]),
                    "gamma": _finite(result.gammas.get(n)), "maps": maps.blobs[n]} for n in result.layers],
    }


def _finite(x):
    return x if isinstance(x, float) and math.isfinite(x) else None  # JSON has no NaN


def render_page(data: dict) -> str:
    from importlib.resources import files

    template = files("sagan_cli.inspect").joinpath(TEMPLATE).read_text(encoding="utf-8")
    blob = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")  # nothing in it can close the script
    title = f"sagan attn-map · step {data['step']}" if data.get("step") is not None else "sagan attn-map"
    return template.replace("{{TITLE}}", title).replace("{{DATA}}", blob)


def write_page(result, maps: PageMaps, path: str | Path, source: str = "") -> Path:
    """Write the page atomically; a failed write is a one-line SaganError naming --html."""
    from sagan_cli.util.fsutil import atomic_open, write_error

    text = render_page(page_data(result, maps, source))
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as fh:
            fh.write(text.encode("utf-8"))
    except OSError as exc:
        raise write_error(path, exc, "--html") from None
    return path
