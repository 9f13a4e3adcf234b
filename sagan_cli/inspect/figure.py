"""Drawing of the attn-map figure with numpy + Pillow: heat-map panels, query rings, colour bar.

Layout: a title line; then one row per seed: the generated image with every query ringed in
its own colour, followed by one panel per (layer, query), layer-major. A panel is the image in
grey with the query's attention map over it: key cells upsampled nearest-neighbour (so each
cell stays a visible block), coloured by ``colormap(weight / panel max)`` — every panel is
scaled to its own maximum, which is printed in its label. A colour bar and a legend close it.

Text is set in Aileron, the TrueType font Pillow bundles (``ImageFont.load_default(size=...)``,
drawn by FreeType), or in Pillow's bitmap font where FreeType is missing. Words are placed one
by one with a gap of ``WORD_GAP`` em: Aileron's own space is 0.22 em, which FreeType's hinting
makes 2 px at small sizes, too little to see. Every line height, width and wrap comes from the
font's measured metrics (``TextStyle``), so text neither overlaps nor leaves the canvas; a label
wider than its panel is set smaller (down to ``MIN_FONT_SIZE``), then cut with "..".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# A perceptual ramp (dark → purple → crimson → orange → pale yellow), luminance rising throughout.
RAMP_POS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
RAMP_RGB = np.array([(10, 7, 30), (80, 20, 110), (180, 45, 90), (245, 125, 30), (252, 245, 160)], float)
# Query colours, chosen to stand apart from the ramp; they cycle after eight queries.
QUERY_COLOURS = [(0, 230, 255), (80, 255, 80), (255, 80, 255), (255, 255, 255),
                 (60, 120, 255), (255, 160, 200), (0, 170, 140), (200, 255, 0)]
ALPHA = 0.65  # weight of the heat colour over the grey image
PAD = 6
LABEL_LINES = 3
FONT_SIZE = 12  # px, the size of all text unless a label has to shrink to fit its panel
MIN_FONT_SIZE = 8
LEADING = 2  # px between the descender of one line and the ascender of the next
WORD_GAP = 0.3  # em between words (at least the font's own space)
BAR_H = 12  # height of the colour bar
BG = (255, 255, 255)
INK = (20, 20, 20)


def colormap(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (any shape) → uint8 RGB (shape + (3,)), linear between the ramp's control points."""
    v = np.clip(np.asarray(v, float), 0.0, 1.0)
    rgb = np.stack([np.interp(v, RAMP_POS, RAMP_RGB[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def query_colour(q: int) -> tuple[int, int, int]:
    return QUERY_COLOURS[q % len(QUERY_COLOURS)]


def load_font(size: int):
    """Aileron at ``size`` px through FreeType; Pillow's bitmap font without FreeType (or before Pillow 10.1)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):
        return getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()


@dataclass(frozen=True)
class TextStyle:
    """A font with the metrics the layout is built from; ``draw`` places words ``gap`` px apart."""

    font: object
    line: int  # line pitch: ink of any line drawn at y stays within [y, y + line - LEADING)
    gap: int  # advance of one space between words
    swatch: tuple[int, int]  # rows (top, bottom) of a capital's ink below the line's top

    def words(self, text: str) -> list[tuple[float, str]]:
        """(x offset, word) of every non-empty word of ``text``, one gap per space."""
        out, x = [], 0.0
        for word in text.split(" "):
            if word:
                out.append((x, word))
                x += self.font.getlength(word)
            x += self.gap
        return out

    def width(self, text: str) -> int:
        """Right edge of the ink of ``text`` drawn at x = 0 (0 for blank text)."""
        placed = self.words(text)
        return max((math.ceil(x + self.font.getbbox(w)[2]) for x, w in placed), default=0)

    def draw(self, draw, xy: tuple[float, float], text: str, fill=INK) -> None:
        x, y = xy
        for dx, word in self.words(text):
            draw.text((x + dx, y), word, font=self.font, fill=fill)


@lru_cache(maxsize=None)
def text_style(size: int = FONT_SIZE) -> TextStyle:
    font = load_font(size)
    _, top, _, bottom = font.getbbox("Hgjy|()[]")
    if hasattr(font, "getmetrics"):  # FreeType: ascender + descender bound every glyph
        ascent, descent = font.getmetrics()
        bottom, em = max(bottom, ascent + descent), font.size
    else:
        em = bottom
    _, cap_top, _, cap_bottom = font.getbbox("H")
    gap = max(math.ceil(font.getlength(" ")), round(WORD_GAP * em))
    return TextStyle(font, bottom + LEADING, gap, (cap_top, cap_bottom))


def fitted(text: str, width: int) -> tuple[TextStyle, str]:
    """The largest style (FONT_SIZE down to MIN_FONT_SIZE) that sets ``text`` within ``width`` px, else cut."""
    for size in range(FONT_SIZE, MIN_FONT_SIZE - 1, -1):
        style = text_style(size)
        if style.width(text) <= width:
            return style, text
    while len(text) > 1 and style.width(text + "..") > width:
        text = text[:-1]
    return style, text + ".."


def panel_scale(imsize: int) -> int:
    """Integer upscaling so that panels are at least 128 px wide."""
    return max(1, 128 // imsize)


def panel_origin(result, seed_index: int, column: int) -> tuple[int, int]:
    """Top-left (y, x) of a panel: column 0 is the image, 1 + layer_index·Q + query the heat-maps."""
    size = result.imsize * panel_scale(result.imsize)
    line = text_style().line
    top = PAD + line + PAD  # the title line
    y = top + seed_index * (LABEL_LINES * line + size + PAD) + LABEL_LINES * line
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


def _wrap(text: str, style: TextStyle, width: int) -> list[str]:
    """Greedy word wrap to lines whose ink fits ``width`` px (a single longer word keeps its own line)."""
    lines, cur = [], ""
    for word in text.split():
        trial = f"{cur} {word}".strip()
        if cur and style.width(trial) > width:
            lines.append(cur)
            cur = word
        else:
            cur = trial
    return lines + ([cur] if cur else [])


def _label(draw, xy: tuple[int, int], text: str, width: int) -> None:
    style, text = fitted(text, width)
    style.draw(draw, xy, text)


LEGEND = ("Heat = attention weight of each key cell for the ringed query pixel, divided by that panel's max "
          "(printed above it, also as a multiple of the uniform weight 1/N over the N keys), so every panel spans "
          "the full bar. Blocks are key cells (nearest-neighbour upsampling). gamma: the layer's output scale.")


def title(result) -> str:
    who = "EMA generator" if result.ema else "raw generator"
    step = f"step {result.step}, " if result.step is not None else ""
    return f"attn-map: {step}{who}, {result.form} attention"


def figure(result) -> np.ndarray:
    """The whole attn-map figure as an H×W×3 uint8 array."""
    from PIL import Image, ImageDraw

    style = text_style()
    line = style.line
    scale = panel_scale(result.imsize)
    size = result.imsize * scale
    n_q, n_s = len(result.queries), len(result.seeds)
    columns = 1 + len(result.layers) * n_q
    head = title(result)
    bar_left, bar_label = PAD + style.width("0") + style.gap, "panel max"
    width = max(PAD + columns * (size + PAD), 2 * PAD + style.width(head), 300)
    bar_w = min(256, width - bar_left - style.gap - style.width(bar_label) - PAD)
    legend = _wrap(LEGEND, style, width - 2 * PAD)
    bar_top = panel_origin(result, n_s, 0)[0] - LABEL_LINES * line
    cap_top, cap_bottom = style.swatch
    bar_text = bar_top + (BAR_H - cap_top - cap_bottom) // 2  # capitals centred on the bar
    legend_top = max(bar_top + BAR_H, bar_text + line) + PAD
    height = legend_top + len(legend) * line + PAD
    canvas = Image.new("RGB", (width, height), BG)
    draw = ImageDraw.Draw(canvas)

    style.draw(draw, (PAD, PAD), head)
    swatch = cap_bottom - cap_top
    for s, seed in enumerate(result.seeds):
        image = result.images[s]
        y, x = panel_origin(result, s, 0)
        canvas.paste(Image.fromarray(_upscale(image, scale)), (x, y))
        _label(draw, (x, y - 3 * line), f"seed {seed}", size)
        _label(draw, (x, y - 2 * line), f"{n_q} quer{'y' if n_q == 1 else 'ies'}", size)
        for q, (row, col) in enumerate(result.queries):
            _ring(draw, y, x, row, col, scale, query_colour(q))
        for li, name in enumerate(result.layers):
            for q, (row, col) in enumerate(result.queries):
                amap = result.maps[name][s, q]
                y, x = panel_origin(result, s, 1 + li * n_q + q)
                canvas.paste(Image.fromarray(heat_panel(image, amap, scale)), (x, y))
                _ring(draw, y, x, row, col, scale, query_colour(q))
                peak = float(amap.max())
                top = y - 3 * line
                draw.rectangle([x, top + cap_top, x + swatch - 1, top + cap_bottom - 1], fill=query_colour(q), outline=INK)
                indent = swatch + style.gap
                _label(draw, (x + indent, top), f"{name} q{q} ({row},{col})", size - indent)
                _label(draw, (x, y - 2 * line), f"max {peak:.3g} = {peak * amap.size:.3g}/N", size)
                if name in result.gammas:
                    _label(draw, (x, y - line), f"gamma {result.gammas[name]:+.3g}", size)

    bar = np.repeat(colormap(np.linspace(0, 1, bar_w))[None], BAR_H, axis=0)
    canvas.paste(Image.fromarray(bar), (bar_left, bar_top))
    draw.rectangle([bar_left - 1, bar_top - 1, bar_left + bar_w, bar_top + BAR_H], outline=INK)
    style.draw(draw, (PAD, bar_text), "0")
    style.draw(draw, (bar_left + bar_w + style.gap, bar_text), bar_label)
    for i, text in enumerate(legend):
        style.draw(draw, (PAD, legend_top + i * line), text)
    return np.asarray(canvas)
