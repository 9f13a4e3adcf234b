"""util/images: the grid layout every sample grid and preview has, pinned pixel for pixel, and save_png.

The layout (docs/decisions.md, "Sample grids"): ``pad``-px gutters of ``fill`` around every cell,
the outer border included; ``nrow`` cells per row even when there are fewer images; a partial
last row is left ``fill``. torchvision's make_grid differs on one image and on fewer images than
``nrow``, so these tests stop a swap from changing the pixels of a grid silently."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sagan_cli.util.errors import SaganError
from sagan_cli.util.images import grid, save_png, to_uint8

from conftest import REPO


def images(b, h=4, w=5, c=3, seed=0):
    """Distinct images that never contain the fill value 255 (so a gutter cannot pass for a cell)."""
    return np.random.default_rng(seed).integers(0, 255, (b, h, w, c), dtype=np.uint8)


def expected(imgs, nrow, pad=2, fill=255):
    """The layout written out cell by cell: what grid() must produce."""
    b, h, w, c = imgs.shape
    rows = -(-b // nrow)
    out = np.full((pad + rows * (h + pad), pad + nrow * (w + pad), c), fill, np.uint8)
    for i in range(b):
        top, left = pad + (i // nrow) * (h + pad), pad + (i % nrow) * (w + pad)
        out[top : top + h, left : left + w] = imgs[i]
    return out


def test_a_tiny_grid_literally():
    a, b, c = (np.full((1, 1, 1, 1), v, np.uint8) for v in (10, 20, 30))
    g = grid(np.concatenate([a, b, c]), nrow=2, pad=1, fill=255)[..., 0]
    np.testing.assert_array_equal(g, [[255, 255, 255, 255, 255],
                                      [255, 10, 255, 20, 255],
                                      [255, 255, 255, 255, 255],
                                      [255, 30, 255, 255, 255],  # the partial last row is fill
                                      [255, 255, 255, 255, 255]])


@pytest.mark.parametrize("b, s", [(64, 32), (64, 64), (256, 32)])
def test_full_grids_have_2px_white_gutters_and_8_per_row(b, s):
    imgs = images(b, s, s)
    g = grid(imgs, nrow=8)
    assert g.shape == (b // 8 * (s + 2) + 2, 8 * (s + 2) + 2, 3) and g.dtype == np.uint8
    np.testing.assert_array_equal(g, expected(imgs, 8))
    cells = np.zeros(g.shape[:2], bool)
    for i in range(b):
        top, left = 2 + (i // 8) * (s + 2), 2 + (i % 8) * (s + 2)
        np.testing.assert_array_equal(g[top : top + s, left : left + s], imgs[i])  # row-major order
        cells[top : top + s, left : left + s] = True
    assert (g[~cells] == 255).all()  # every gutter pixel, the outer border included, is white


def test_the_partial_last_row_is_padded_with_fill():
    imgs = images(10)
    g = grid(imgs, nrow=4)
    assert g.shape == (3 * 6 + 2, 4 * 7 + 2, 3)
    np.testing.assert_array_equal(g, expected(imgs, 4))
    assert (g[2 * 6 + 2 : 2 * 6 + 6, 2 * 7 + 2 :] == 255).all()  # cells 10 and 11


def test_fewer_images_than_nrow_keep_nrow_columns():
    imgs = images(3)
    g = grid(imgs, nrow=8)
    assert g.shape == (4 + 4, 8 * 7 + 2, 3)
    np.testing.assert_array_equal(g, expected(imgs, 8))


def test_one_image_keeps_its_border():
    imgs = images(1)
    np.testing.assert_array_equal(grid(imgs, nrow=8), expected(imgs, 8))
    np.testing.assert_array_equal(grid(imgs)[2:-2, 2:-2], imgs[0])
    assert grid(imgs).shape == (4 + 4, 5 + 4, 3)


@pytest.mark.parametrize("b, cols", [(1, 1), (2, 2), (4, 2), (5, 3), (10, 4), (16, 4), (17, 5), (64, 8)])
def test_default_nrow_is_the_ceiling_of_the_square_root(b, cols):
    imgs = images(b)
    np.testing.assert_array_equal(grid(imgs), expected(imgs, cols))


def test_pad_fill_and_channels_are_honoured():
    imgs = images(5, c=1)
    np.testing.assert_array_equal(grid(imgs, nrow=2, pad=3, fill=0), expected(imgs, 2, pad=3, fill=0))
    assert grid(imgs, nrow=2).shape[2] == 1  # single-channel stays single-channel
    four = images(4)
    tight = np.concatenate([np.concatenate(four[:2], 1), np.concatenate(four[2:], 1)], 0)
    np.testing.assert_array_equal(grid(four, nrow=2, pad=0), tight)  # pad 0: cells edge to edge


def test_to_uint8_rounds_clamps_and_goes_nhwc():
    import torch

    x = torch.tensor([-1.0, 1.0, 0.0, -3.0, 2.0, 0.5]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    y = to_uint8(x)  # 127.5 (x + 1), rounded half to even, clamped to 0..255
    assert y.shape == (1, 1, 6, 3) and y.dtype == np.uint8
    assert y[0, 0, :, 0].tolist() == [0, 255, 128, 0, 255, 191]


def test_save_png_round_trips_the_pixels_and_leaves_no_temp_file(tmp_path):
    g = grid(images(6), nrow=3)
    out = save_png(g, tmp_path / "deep" / "er" / "g.png")
    np.testing.assert_array_equal(np.asarray(Image.open(out)), g)
    assert sorted(p.name for p in out.parent.iterdir()) == ["g.png"]


def test_save_png_failure_is_one_line_and_writes_nothing(tmp_path):
    (tmp_path / "g.png").mkdir()  # a directory where the file should go
    with pytest.raises(SaganError) as exc:
        save_png(grid(images(2)), tmp_path / "g.png")
    assert "\n" not in str(exc.value) and "g.png" in str(exc.value)
    assert list((tmp_path / "g.png").iterdir()) == []


def test_grids_and_pngs_need_no_torch(tmp_path):
    """prepare --preview tiles in a process that has not imported torch (and must not need to)."""
    code = ("import sys, numpy as np; from sagan_cli.util import images; "
            "images.save_png(images.grid(np.zeros((3, 4, 4, 3), np.uint8)), sys.argv[1]); "
            "sys.exit(int('torch' in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "g.png")], cwd=REPO, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "g.png").size == (2 * 6 + 2, 2 * 6 + 2)  # 3 images: 2 per row, 2 rows
