"""`sagan attn-map` figure: a planted attention lights up its key cell; layout, rings, normalisation, colour bar;
text in a real font whose spaces show, inside the canvas and clear of panels and other text."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from attnmap_helpers import build_variant, set_sn_weight, trained_checkpoint

from sagan_cli.inspect.attention import AttentionMaps
from sagan_cli.inspect.figure import (
    ALPHA, FONT_SIZE, LABEL_LINES, PAD, QUERY_COLOURS, colormap, figure, fitted, panel_origin, panel_scale, text_style,
    title,
)
from sagan_cli.inspect.sample import latent

SPOT = (1, 3)  # the key cell of the 4×4 layer g4 that every query is made to attend to
SEEDS = [0, 1]
SIZE = 32 * panel_scale(32)  # panel side in the figure


@pytest.fixture
def trained(tmp_path_factory):
    return trained_checkpoint(tmp_path_factory)


def plant(G, D):
    """G's 4×4 attention layer attends from every query to the key cell SPOT.

    The first G block writes ±u·z into channels 0-3 at SPOT only (u = the unit latents of the test
    seeds), so after ReLU the feature there is |u·z| > 0 and zero elsewhere. The key projection
    sums channels 0-3, the query is the constant bias 1000·e0 (its weight reads an always-zero
    channel): the score of SPOT is ~1000·|u·z|, every other key scores 0.
    """
    z_dim = G.cfg.z_dim
    conv = G.blocks[0][0]
    w = torch.zeros_like(conv.parametrizations.weight.original)  # z_dim × C × 4 × 4
    for i, seed in enumerate(SEEDS):
        u = latent(seed, z_dim)
        u = u / u.norm()
        w[:, 2 * i, SPOT[0], SPOT[1]] = u
        w[:, 2 * i + 1, SPOT[0], SPOT[1]] = -u
    set_sn_weight(conv, w)
    attn = G.attn["4"]
    c, inner = attn.channels, attn.query.parametrizations.weight.original.shape[0]
    wk = torch.zeros(inner, c, 1, 1)
    wk[0, : 2 * len(SEEDS)] = 1.0
    wq = torch.zeros(inner, c, 1, 1)
    wq[0, c - 1] = 1.0
    set_sn_weight(attn.key, wk)
    set_sn_weight(attn.query, wq)
    with torch.no_grad():
        assert conv.bias is None  # G's convs that feed BatchNorm have no bias
        attn.key.bias.zero_()
        attn.query.bias.zero_()
        attn.query.bias[0] = 1000.0
        attn.gamma.fill_(1.0)


def load_png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def cell_distances(panel: np.ndarray, grid: int) -> np.ndarray:
    """Median L1 distance of each key cell's pixels to the top colour of the ramp."""
    hot = colormap(1.0).astype(int)
    d = np.abs(panel.astype(int) - hot).sum(-1)
    step = panel.shape[0] // grid
    return np.array([[np.median(d[i * step:(i + 1) * step, j * step:(j + 1) * step]) for j in range(grid)]
                     for i in range(grid)])


def test_planted_attention_lights_up_its_key_cell_in_the_maps_and_the_png(cli, trained, tmp_path):
    ckpt = build_variant(trained, tmp_path / "planted.pt", edit=plant, g_attn=(4,), d_attn=(8,))
    queries = [(27, 2), (5, 20)]
    r = cli("attn-map", ckpt, "-q", "27,2", "-q", "5,20", "--seeds", "0-1", "--out", "fig.png",
            "--save-maps", "m.npz", "--device", "cpu")
    assert r.code == 0, r.stderr
    with np.load(tmp_path / "m.npz", allow_pickle=False) as m:
        assert list(m["layers"]) == ["g4", "d8"]
        for q in range(2):
            maps = m[f"map_g4_q{q}"]
            assert maps.shape == (2, 4, 4)
            assert (maps[:, SPOT[0], SPOT[1]] > 0.99).all()
    fig = load_png(tmp_path / "fig.png")
    layout = AttentionMaps(imsize=32, form="paper", seeds=SEEDS, queries=queries, layers=["g4", "d8"],
                           resolutions={}, key_grids={}, cells={})
    for s in range(2):
        for q in range(2):
            y, x = panel_origin(layout, s, 1 + q)  # layer g4 comes first: columns 1 and 2
            dist = cell_distances(fig[y:y + SIZE, x:x + SIZE], 4)
            others = np.delete(dist.ravel(), SPOT[0] * 4 + SPOT[1])
            assert np.unravel_index(dist.argmin(), dist.shape) == SPOT
            assert dist[SPOT] < 0.7 * others.min(), dist


def test_figure_layout_image_column_and_query_rings(cli, trained, tmp_path):
    queries = [(4, 28), (20, 6), (31, 31)]
    r = cli("attn-map", trained, *[a for q in queries for a in ("-q", f"{q[0]},{q[1]}")], "--seeds", "2-3",
            "--layers", "g16,d4", "--out", "sub/fig.png", "--save-maps", "m.npz", "--device", "cpu")
    assert r.code == 0, r.stderr
    fig = load_png(tmp_path / "sub/fig.png")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as m:
        images = m["images"]
    layout = AttentionMaps(imsize=32, form="paper", seeds=[2, 3], queries=queries, layers=["g16", "d4"],
                           resolutions={}, key_grids={}, cells={})
    columns = 1 + 2 * 3  # the image, then (layer, query) panels
    y_last, x_last = panel_origin(layout, 1, columns - 1)
    assert fig.shape[1] >= x_last + SIZE and fig.shape[0] > y_last + SIZE
    scale = SIZE // 32
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    near_ring = np.zeros((SIZE, SIZE), bool)
    for row, col in queries:
        near_ring |= np.hypot(yy - (row + 0.5) * scale, xx - (col + 0.5) * scale) < 1.5 * scale + 4
    for s in range(2):
        y, x = panel_origin(layout, s, 0)
        shown = fig[y:y + SIZE, x:x + SIZE]
        big = np.repeat(np.repeat(images[s], scale, 0), scale, 1)
        np.testing.assert_array_equal(shown[~near_ring], big[~near_ring])
        for q, (row, col) in enumerate(queries):
            ring = np.abs(np.hypot(yy - (row + 0.5) * scale, xx - (col + 0.5) * scale) - 1.5 * scale) < 1.5
            colour = np.array(QUERY_COLOURS[q])
            assert (shown[ring] == colour).all(-1).mean() > 0.5, f"query {q} ring missing in the image column"
            for li in range(2):
                for other in range(3):  # every panel rings its own query, in its colour, and no other
                    py, px = panel_origin(layout, s, 1 + li * 3 + other)
                    panel = fig[py:py + SIZE, px:px + SIZE]
                    share = (panel[ring] == colour).all(-1).mean()
                    assert (share > 0.5) if other == q else (share < 0.1)


def synthetic(amap: np.ndarray, image_value: int = 0) -> AttentionMaps:
    kh, kw = amap.shape
    return AttentionMaps(
        imsize=32, form="paper", seeds=[0], queries=[(0, 0)], layers=["g16"], resolutions={"g16": 16},
        key_grids={"g16": (kh, kw)}, cells={"g16": [(0, 0)]}, maps={"g16": amap[None, None].astype(np.float32)},
        images=np.full((1, 32, 32, 3), image_value, np.uint8), step=7,
    )


def test_each_panel_is_scaled_to_its_own_max_with_nearest_neighbour_cells():
    amap = np.array([[0.1, 0.3], [0.6, 0.0]])
    fig = figure(synthetic(amap))
    y, x = panel_origin(synthetic(amap), 0, 1)
    panel = fig[y:y + SIZE, x:x + SIZE].astype(int)
    half = SIZE // 2
    for (i, j), v in np.ndenumerate(amap / amap.max()):
        block = panel[i * half:(i + 1) * half, j * half:(j + 1) * half].reshape(-1, 3)
        expected = np.round(ALPHA * colormap(v).astype(float)).astype(int)  # black image underneath
        # every pixel of the key cell has the cell's colour (apart from the ring at the query)
        assert (np.abs(block - expected).max(-1) <= 1).mean() > 0.95, (i, j)
    halved = figure(synthetic(amap * 0.5))
    np.testing.assert_array_equal(halved[y:y + SIZE, x:x + SIZE], fig[y:y + SIZE, x:x + SIZE])


def test_colour_bar_shows_the_whole_ramp():
    fig = figure(synthetic(np.eye(4))).astype(int)
    low, high = colormap(0.0).astype(int), colormap(1.0).astype(int)
    found = False
    for row in fig:
        lows = np.flatnonzero((row == low).all(-1))
        highs = np.flatnonzero((row == high).all(-1))
        if len(lows) and len(highs) and highs[-1] - lows[0] > 100:
            bar = row[lows[0]:highs[-1] + 1]
            lum = bar @ np.array([0.299, 0.587, 0.114])
            found = found or bool((np.diff(lum) >= -1e-9).all())
    assert found, "no row with the colour ramp from its low to its high end"


def test_colormap_is_a_ramp_of_rising_luminance():
    v = np.linspace(0, 1, 101)
    rgb = colormap(v)
    assert rgb.shape == (101, 3) and rgb.dtype == np.uint8
    lum = rgb.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert (np.diff(lum) > 0).all()
    assert lum[-1] - lum[0] > 180
    np.testing.assert_array_equal(colormap(np.array([-1.0, 2.0])), colormap(np.array([0.0, 1.0])))
    assert len({tuple(c) for c in QUERY_COLOURS}) == len(QUERY_COLOURS)


# --- text: a real font whose spaces show, laid out from its own metrics (issue #14 item 13) ---


@pytest.fixture(params=["freetype", "bitmap"])
def font_kind(request, monkeypatch):
    """Text in Aileron through FreeType, or in the bitmap font as on a Pillow built without FreeType."""
    from PIL import ImageFont, features

    if request.param == "freetype" and not features.check("freetype2"):
        pytest.skip("this Pillow has no FreeType")
    if request.param == "bitmap":
        def no_freetype(size=None):
            if size is not None:
                raise ImportError("The _imagingft C module is not installed")
            return ImageFont.load_default_imagefont()
        monkeypatch.setattr(ImageFont, "load_default", no_freetype)
    text_style.cache_clear()
    yield request.param
    text_style.cache_clear()


def many(n_q: int, n_s: int, layers: list[str], grid: int = 4, peak: float | None = None,
         seeds: list[int] | None = None) -> AttentionMaps:
    """A synthetic result with n_q queries, n_s seeds and the given layers (maps of grid×grid keys)."""
    rng = np.random.default_rng(0)
    queries = [(int(rng.integers(32)), int(rng.integers(32))) for _ in range(n_q)]
    maps = {name: rng.random((n_s, n_q, grid, grid)).astype(np.float32) for name in layers}
    if peak is not None:  # long value labels: "max 1.23e-05 = 0.0504/N"
        maps = {name: (m / m.max() * peak).astype(np.float32) for name, m in maps.items()}
    return AttentionMaps(
        imsize=32, form="official", seeds=seeds or list(range(n_s)), queries=queries, layers=layers,
        resolutions={n: 16 for n in layers}, key_grids={n: (grid, grid) for n in layers},
        cells={n: queries for n in layers}, maps=maps, gammas={n: -1.234e-05 for n in layers},
        images=rng.integers(0, 256, (n_s, 32, 32, 3), dtype=np.uint8), step=1234567,
    )


def blank_runs(ink_columns: np.ndarray) -> list[int]:
    """Widths of the runs of ink-free columns between the first and the last inked column."""
    xs = np.flatnonzero(ink_columns)
    gaps = np.diff(xs) - 1
    return gaps[gaps > 0].tolist()


def test_the_font_is_truetype_and_its_spaces_advance(font_kind):
    from PIL import ImageFont

    style = text_style()
    if font_kind == "freetype":
        assert isinstance(style.font, ImageFont.FreeTypeFont) and style.font.size == FONT_SIZE
    assert style.font.getlength("a b") > style.font.getlength("ab")
    # a word space the eye sees: at least a quarter em, where Aileron's own is 2-3 px
    assert style.width("a b") - style.width("ab") >= 0.25 * FONT_SIZE
    assert style.width("EMA generator") >= style.width("EMA") + style.width("generator") + 3


def test_every_space_of_the_title_is_a_visible_gap_in_the_pixels(font_kind):
    result = synthetic(np.eye(4))
    fig = figure(result)
    style, head = text_style(), title(result)
    row = fig[PAD:PAD + style.line]  # nothing but the title is drawn in these rows
    ink = (row != 255).any(-1).any(0)
    runs = blank_runs(ink)
    word_gap = math.ceil(0.25 * FONT_SIZE)
    assert sum(r >= word_gap for r in runs) == head.count(" "), (head, sorted(runs))
    # the pixels span what the layout measured (which is what the figure's width is built from)
    xs = np.flatnonzero(ink)
    assert abs((xs[-1] + 1 - PAD) - style.width(head)) <= 1


def _draw_log(monkeypatch):
    """Record the bbox of every text, pasted image and rectangle the figure draws."""
    from PIL import Image, ImageDraw

    log = {"text": [], "box": []}
    text, rectangle, paste = ImageDraw.ImageDraw.text, ImageDraw.ImageDraw.rectangle, Image.Image.paste

    def logged_text(self, xy, s, *args, font=None, **kwargs):
        log["text"].append((s, self.textbbox(xy, s, font=font)))
        return text(self, xy, s, *args, font=font, **kwargs)

    def logged_rectangle(self, xy, *args, **kwargs):
        x0, y0, x1, y1 = xy
        log["box"].append((x0, y0, x1 + 1, y1 + 1))
        return rectangle(self, xy, *args, **kwargs)

    def logged_paste(self, im, box=None, *args, **kwargs):
        log["box"].append((box[0], box[1], box[0] + im.width, box[1] + im.height))
        return paste(self, im, box, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", logged_text)
    monkeypatch.setattr(ImageDraw.ImageDraw, "rectangle", logged_rectangle)
    monkeypatch.setattr(Image.Image, "paste", logged_paste)
    return log


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("case", ["1q-1s-1l", "3q-2s-2l", "long-labels"])
def test_no_text_leaves_the_canvas_overlaps_text_or_crosses_a_panel(font_kind, case, monkeypatch):
    result = {"1q-1s-1l": lambda: many(1, 1, ["g16"]),
              "3q-2s-2l": lambda: many(3, 2, ["g16", "d8"]),
              "long-labels": lambda: many(2, 2, ["g16"], grid=64, peak=1.234e-05, seeds=[123456789, 4294967295]),
              }[case]()
    log = _draw_log(monkeypatch)
    fig = figure(result)
    h, w = fig.shape[:2]
    texts = log["text"]
    assert {"attn-map:", "panel", "max", "seed", "gamma"} <= {s for s, _ in texts}
    columns = [panel_origin(result, 0, c)[1] for c in range(1 + len(result.layers) * len(result.queries))]
    line = text_style().line
    labels = (PAD + line, panel_origin(result, len(result.seeds), 0)[0] - LABEL_LINES * line)  # below the title, above the bar
    for i, (s, box) in enumerate(texts):
        assert 0 <= box[0] and box[2] <= w and 0 <= box[1] and box[3] <= h, (s, box, (w, h))
        for other, obox in texts[i + 1:]:
            assert not _overlap(box, obox), (s, box, other, obox)
        for rect in log["box"]:  # images, heat panels, colour bar, query swatches
            assert not _overlap(box, rect), (s, box, rect)
        if labels[0] < box[1] < labels[1]:  # a label above a panel stays over its own column
            assert any(x <= box[0] and box[2] <= x + SIZE for x in columns), (s, box)


def test_a_label_wider_than_its_panel_is_set_smaller_or_cut(font_kind):
    label = "max 1.23e-05 = 0.0504/N"
    style, text = fitted(label, SIZE)
    assert style.width(text) <= SIZE
    if font_kind == "freetype":
        assert text == label and style.font.size < FONT_SIZE
    style, text = fitted(label, 40)
    assert text.endswith("..") and style.width(text) <= 40
