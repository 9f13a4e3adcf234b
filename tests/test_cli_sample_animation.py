"""`sagan sample`: animated interpolations (GIF, WebP) and --scale on grids, per-image files and animations."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from attnmap_helpers import trained_checkpoint

FAST = ("--no-standing-stats", "--device", "cpu")  # what is tested here does not depend on G's statistics


@pytest.fixture
def ckpt(tmp_path_factory):
    return trained_checkpoint(tmp_path_factory)


def frames(path) -> list[np.ndarray]:
    with Image.open(path) as im:
        out = []
        for i in range(im.n_frames):
            im.seek(i)
            out.append(np.asarray(im.convert("RGB")))
    return out


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def cell(sheet, row, col, side=32, pad=2):
    y, x = pad + row * (side + pad), pad + col * (side + pad)
    return sheet[y : y + side, x : x + side]


def test_an_animated_interpolation_has_one_frame_per_step_with_every_pair_side_by_side(cli, ckpt, tmp_path):
    walk = ("--interpolate", "4", "--seeds", "0-3", *FAST)
    r = cli("sample", ckpt, *walk, "--out", "walk.gif", "--scale", "2")
    assert r.code == 0, r.stderr
    assert "3 interpolations × 4 steps" in r.stdout and "walk.gif (4 frames at 10 fps)" in r.stdout
    with Image.open(tmp_path / "walk.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == 4 and gif.info["loop"] == 0 and gif.info["duration"] == 100
        assert gif.size == (3 * 66 + 2, 66 + 2)  # the 3 pairs in one row of 64-px (2× 32) cells, 2-px gutters
    assert cli("sample", ckpt, *walk, "--out", "sheet.png").code == 0
    assert cli("sample", ckpt, *walk, "--out", "walk.webp", "--nrow", "2", "--fps", "20").code == 0
    sheet, gif_frames, webp_frames = pixels(tmp_path / "sheet.png"), frames(tmp_path / "walk.gif"), frames(tmp_path / "walk.webp")
    for t in range(4):  # frame t shows step t of each pair: column t of that pair's row on the sheet
        for p in range(3):
            shown = cell(gif_frames[t], 0, p, side=64)[::2, ::2].astype(int)  # nearest ×2: every other pixel
            assert np.abs(shown - cell(sheet, p, t)).mean() < 8, (t, p)  # the same image through 256 colours
            # WebP is lossless: bit-exact; --nrow 2 wraps the pairs, 2 to a row
            assert np.array_equal(cell(webp_frames[t], p // 2, p % 2), cell(sheet, p, t)), (t, p)
    with Image.open(tmp_path / "walk.webp") as webp:
        assert webp.format == "WEBP" and webp.n_frames == 4 and webp.size == (2 * 34 + 2, 2 * 34 + 2)
        webp.load()  # Pillow reads a WebP frame's duration with the frame
        assert webp.info["duration"] == 50


def test_scale_upscales_every_image_nearest_neighbour(cli, ckpt, tmp_path):
    base = ("--seeds", "0-3", *FAST)
    assert cli("sample", ckpt, *base, "--out", "x1.png").code == 0
    assert cli("sample", ckpt, *base, "--out", "x3.png", "--scale", "3").code == 0
    x1, x3 = pixels(tmp_path / "x1.png"), pixels(tmp_path / "x3.png")
    assert x3.shape == (2 * 98 + 2, 2 * 98 + 2, 3)  # 2×2 cells of 96 px, the 2-px gutters kept
    assert np.array_equal(cell(x3, 1, 0, side=96), cell(x1, 1, 0).repeat(3, 0).repeat(3, 1))
    assert cli("sample", ckpt, *base, "--outdir", "big", "--scale", "2").code == 0
    one = pixels(tmp_path / "big" / "seed000001.png")
    assert one.shape == (64, 64, 3) and np.array_equal(one, cell(x1, 0, 1).repeat(2, 0).repeat(2, 1))
