"""Drawing of the attn-map figure with numpy + Pillow: heat-map panels, query rings, colour bar.

Layout: a title line; then one row per seed: the generated image with every query ringed in
its own colour, followed by one panel per (layer, query), layer-major. A panel is the image in
grey with the query's attention map over it: key cells upsampled nearest-neighbour (so each
cell stays a visible block), coloured by ``colormap(weight / panel max)`` — every panel is
scaled to its own maximum, which is printed in its label. A colour bar and a legend close it.
"""

from __future__ import annotations

import numpy as np

# A perceptual ramp (dark → purple → crimson → orange → pale yellow), luminance rising throughout.
RAMP_POS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
RAMP_RGB = np.array([(10, 7, 30), (80, 20, 110), (180, 45, 90), (245, 125, 30), (252, 245, 160)], float)
# Query colours, chosen to stand apart from the ramp; they cycle after eight queries.
QUERY_COLOURS = [(0, 230, 255), (80, 255, 80), (255, 80, 255), (255, 255, 255),
                 (60, 120, 255), (255, 160, 200), (0, 170, 140), (200, 255, 0)]
ALPHA = 0.65  # weight of the heat colour over the grey image
PAD = 6
LINE = 14  # text line height
LABEL_LINES = 3
BG = (255, 255, 255)
INK = (20, 20, 20)


def colormap(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) → uint8 RGB (shape + (3,)), linear between the ramp's control points."""
    v = np.clip(np.asarray(v, float), 0.0, 1.0)
    rgb = np.stack([np.interp(v, RAMP_POS, RAMP_RGB[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def query_colour(q: int) -> tuple[int, int, int]:
    return QUERY_COLOURS[q % len(QUERY_COLOURS)]


def panel_scale(imsize: int) -> int:
    """Integer upscaling so that panels are at least 128 px wide."""
    return max(1, 128 // imsize)


def panel_origin(result, seed_index: int, column: int) -> tuple[int, int]:
    """Top-left (y, x) of a panel: column 0 is the image, 1 + layer_index·Q + query the heat-maps."""
    size = result.imsize * panel_scale(result.imsize)
    top = LINE + PAD  # title line
    y = top + seed_index * (LABEL_LINES * LINE + size + PAD) + LABEL_LINES * LINE
    x = PAD + column * (size + PAD)
    return y, x


def heat_panel(image: np.ndarray, amap: np.ndarray, scale: int) -> np.ndarray:
    """Grey image (H×W×3 uint8) under the key-grid map (kh×kw), scaled to its max, both upsampled."""
    size = image.shape[0] * scale
    grey = image.astype(float) @ np.array([0.299, 0.587, 0.114])
    grey = np.repeat(np.repeat(grey, scale, 0), scale, 1)[..., None]
    peak = float(amap.max())
    heat = colormap(amap / peak if peak > 0 else amap).astype(float)
    kh, kw = amap.shape
    heat = np.repeat(np.repeat(heat, size // kh, 0), size // kw, 1)
    return np.round((1 - ALPHA) * grey + ALPHA * heat).astype(np.uint8)


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(image, scale, 0), scale, 1)


def _ring(draw, y0: int, x0: int, row: int, col: int, scale: int, colour) -> None:
    cy, cx = y0 + (row + 0.5) * scale, x0 + (col + 0.5) * scale
    r = max(5.0, 1.5 * scale)
    draw.ellipse([cx - r - 1, cy - r - 1, cx + r + 1, cy + r + 1], outline=(0, 0, 0), width=4)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=2)
    draw.rectangle([cx - 1, cy - 1, cx + 1, cy + 1], fill=colour)


def _wrap(text: str, font, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        trial = f"{cur} {word}".strip()
        if cur and font.getlength(trial) > width:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return lines + ([cur] if cur else [])


LEGEND = ("Heat = attention weight of each key cell for the ringed query pixel, divided by that panel's max "
          "(printed above it, also as a multiple of the uniform weight 1/N over the N keys), so every panel spans "
          "the full bar. Blocks are key cells (nearest-neighbour upsampling). gamma: the layer's output scale.")


def figure(result) -> np.ndarray:
    """The whole attn-map figure as an H×W×3 uint8 array."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    scale = panel_scale(result.imsize)
    size = result.imsize * scale
    n_q, n_s = len(result.queries), len(result.seeds)
    columns = 1 + len(result.layers) * n_q
    width = max(PAD + columns * (size + PAD), 300)
    legend = _wrap(LEGEND, font, width - 2 * PAD)
    bar_top = panel_origin(result, n_s, 0)[0] - LABEL_LINES * LINE
    height = bar_top + 12 + LINE + PAD + len(legend) * LINE + PAD
    canvas = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(canvas)

    who = "EMA generator" if result.ema else "raw generator"
    step = f"step {result.step}, " if result.step is not None else ""
    draw.text((PAD, 2), f"attn-map: {step}{who}, {result.form} attention", font=font, fill=INK)
    for s, seed in enumerate(result.seeds):
        image = result.images[s]
        y, x = panel_origin(result, s, 0)
        canvas.paste(Image.fromarray(_upscale(image, scale)), (x, y))
        draw.text((x, y - 3 * LINE), f"seed {seed}", font=font, fill=INK)
        draw.text((x, y - 2 * LINE), f"{n_q} quer{'y' if n_q == 1 else 'ies'}", font=font, fill=INK)
        for q, (row, col) in enumerate(result.queries):
            _ring(draw, y, x, row, col, scale, query_colour(q))
        for li, name in enumerate(result.layers):
            for q, (row, col) in enumerate(result.queries):
                amap = result.maps[name][s, q]
                y, x = panel_origin(result, s, 1 + li * n_q + q)
                canvas.paste(Image.fromarray(heat_panel(image, amap, scale)), (x, y))
                _ring(draw, y, x, row, col, scale, query_colour(q))
                peak = float(amap.max())
                draw.rectangle([x, y - 3 * LINE + 3, x + 8, y - 3 * LINE + 11], fill=query_colour(q), outline=INK)
                draw.text((x + 12, y - 3 * LINE), f"{name} q{q} ({row},{col})", font=font, fill=INK)
                draw.text((x, y - 2 * LINE), f"max {peak:.3g} = {peak * amap.size:.3g}/N", font=font, fill=INK)
                if name in result.gammas:
                    draw.text((x, y - LINE), f"gamma {result.gammas[name]:+.3g}", font=font, fill=INK)

    bar_w = min(256, width - 2 * PAD - 90)
    bar = np.repeat(colormap(np.linspace(0, 1, bar_w))[None], 12, axis=0)
    canvas.paste(Image.fromarray(bar), (PAD + 14, bar_top))
    draw.rectangle([PAD + 13, bar_top - 1, PAD + 14 + bar_w, bar_top + 12], outline=INK)
    draw.text((PAD, bar_top), "0", font=font, fill=INK)
    draw.text((PAD + 20 + bar_w, bar_top), "panel max", font=font, fill=INK)
    for i, line in enumerate(legend):
        draw.text((PAD, bar_top + 12 + PAD + i * LINE), line, font=font, fill=INK)
    return np.asarray(canvas)
