"""`sagan prepare folder DIR`."""

from __future__ import annotations

import io

import numpy as np

from conftest import assert_one_line_error
from prepare_helpers import encode, picture, reference
from sagan_cli.data.dataset import open_dataset


def _tree(root):
    """Images at several depths and in every accepted format, plus files that are not images."""
    files = {
        "b.png": ("PNG", 40, 30), "a.JPG": ("JPEG", 30, 44), "a/x.webp": ("WEBP", 50, 35),
        "a/deeper/y.bmp": ("BMP", 33, 33), "c/z.jpeg": ("JPEG", 64, 20), "a.png": ("PNG", 28, 36),
    }
    values = {}
    for i, (rel, (fmt, w, h)) in enumerate(sorted(files.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(picture(i, w, h), fmt))
        values[rel] = path.read_bytes()
    (root / "notes.txt").write_text("not an image")
    (root / "a" / "broken.jpg").write_bytes(b"definitely not an image")
    return values


def test_folder_recursive_sorted_with_skips(cli, tmp_path):
    values = _tree(tmp_path / "photos")
    r = cli("prepare", "folder", "photos", "--imsize", 32, "--workers", 1)
    assert r.code == 0, r.stderr
    ds = open_dataset(tmp_path / "data" / "folder-photos-32")
    order = ["a/deeper/y.bmp", "a/x.webp", "a.JPG", "a.png", "b.png", "c/z.jpeg"]  # sorted by path components
    # reference() sorts its keys, so feed them as numbered keys in the expected order
    expected, _ = reference({f"{i:03d}".encode(): values[rel] for i, rel in enumerate(order)}, 32)
    np.testing.assert_array_equal(np.asarray(ds.images), expected)
    assert ds.meta["skipped_count"] == 1
    assert ds.meta["skipped"][0]["key"] == "a/broken.jpg"
    assert ds.meta["skipped"][0]["reason"]  # one line, no object addresses: the same on every run
    assert "0x" not in ds.meta["skipped"][0]["reason"] and "\n" not in ds.meta["skipped"][0]["reason"]
    assert ds.meta["source"] == "folder" and ds.meta["source_path"] == str((tmp_path / "photos").resolve())
    assert "1 undecodable entry skipped" in r.stdout


def test_folder_modes_and_alpha(cli, tmp_path):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    rgba = Image.new("RGBA", (40, 20), (10, 200, 30, 0))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    (tmp_path / "imgs" / "rgba.png").write_bytes(buf.getvalue())
    Image.new("L", (20, 40), 77).save(tmp_path / "imgs" / "grey.png")
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--out", "o")
    assert r.code == 0, r.stderr
    ims = np.asarray(open_dataset(tmp_path / "o").images)
    assert (ims[0] == 77).all()  # greyscale expanded to RGB
    assert tuple(ims[1][:, 0, 0]) == (10, 200, 30)  # alpha dropped


def test_folder_bad_input(cli, tmp_path):
    assert_one_line_error(cli("prepare", "folder", "missing"), "not found")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    assert_one_line_error(cli("prepare", "folder", "empty"), "no images", "empty")
    (tmp_path / "file.png").write_bytes(b"x")
    assert_one_line_error(cli("prepare", "folder", "file.png"), "not a directory")
    assert not (tmp_path / "data").exists()
