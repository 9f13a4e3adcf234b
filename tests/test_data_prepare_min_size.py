"""`prepare --min-size`: source images whose short side is under it are skipped with their reason, not blown
up into blur (default: half --imsize; 0 keeps everything), on every source that reads real images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error
from prepare_helpers import STEM, encode, lsun_key, picture
from sagan_cli.data.dataset import open_dataset
from sagan_cli.data.prepare import pipeline

SIZES = {"a-big.png": (48, 36), "b-small.png": (10, 10), "c-edge.png": (16, 40), "d-mid.png": (20, 24)}


def _folder(root, sizes=SIZES):
    root.mkdir()
    for i, (name, (w, h)) in enumerate(sizes.items()):
        Image.fromarray(np.full((h, w, 3), 20 * i % 256, np.uint8)).save(root / name)
    return root


def _skips(path) -> dict[str, str]:
    return {s["key"]: s["reason"] for s in open_dataset(path).meta["skipped"]}


def test_images_under_half_the_size_are_skipped_with_their_reason(cli, tmp_path):
    _folder(tmp_path / "imgs")
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--workers", 1, "--out", "o")
    assert r.code == 0, r.stderr
    ds = open_dataset(tmp_path / "o")
    assert len(ds) == 3  # 16 px short side is kept: only a side under 16 (half of 32) is too small
    assert _skips(tmp_path / "o") == {"b-small.png": "too small: 10x10, short side under --min-size 16"}
    assert ds.meta["min_size"] == 16 and ds.meta["request"]["min_size"] == 16 and ds.meta["skipped_small"] == 1
    assert "1 image under --min-size 16 skipped (keys and reasons in meta.json)" in r.stdout
    assert (ds.images[:, :, 0, 0] == [[0] * 3, [40] * 3, [60] * 3]).all()  # the kept ones, in order


def test_min_size_zero_keeps_everything_and_a_given_size_applies(cli, tmp_path):
    _folder(tmp_path / "imgs")
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--min-size", 0, "--out", "all")
    assert r.code == 0 and "no entries skipped" in r.stdout, r.stderr
    assert len(open_dataset(tmp_path / "all")) == 4
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--min-size", 24, "--out", "big")
    assert r.code == 0, r.stderr
    assert sorted(_skips(tmp_path / "big")) == ["b-small.png", "c-edge.png", "d-mid.png"]
    assert "3 images under --min-size 24 skipped" in r.stdout
    # the default follows --imsize: at 64 px everything under 32 goes
    r = cli("prepare", "folder", "imgs", "--imsize", 64, "--out", "at64")
    assert r.code == 0 and "3 images under --min-size 32 skipped" in r.stdout, r.stderr


def test_the_summary_counts_too_small_and_undecodable_apart(cli, tmp_path):
    _folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "e-broken.png").write_bytes(b"not an image")
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--out", "o")
    assert r.code == 0, r.stderr
    assert "1 undecodable entry and 1 image under --min-size 16 skipped (keys and reasons in meta.json)" in r.stdout
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--out", "o")  # the same words when already prepared
    assert "already prepared" in r.stdout and "1 undecodable entry and 1 image under --min-size 16 skipped" in r.stdout


def test_lsun_skips_small_images_too(cli, tmp_path):
    import lmdb

    directory = tmp_path / STEM
    directory.mkdir()
    env = lmdb.open(str(directory), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, (w, h) in enumerate([(60, 45), (30, 20), (45, 50), (64, 31)]):
            txn.put(lsun_key(i), encode(picture(i, w, h), "WEBP"))
    env.close()
    r = cli("prepare", "lsun", "church_outdoor", "--lmdb", directory, "--imsize", 64, "--workers", 1, "--out", "o")
    assert r.code == 0, r.stderr
    assert len(open_dataset(tmp_path / "o")) == 2
    assert sorted(_skips(tmp_path / "o").values()) == ["too small: 30x20, short side under --min-size 32",
                                                      "too small: 64x31, short side under --min-size 32"]
    assert "2 images under --min-size 32 skipped" in r.stdout


def test_every_image_too_small_is_one_line_and_leaves_nothing(cli, tmp_path):
    _folder(tmp_path / "imgs", {"a.png": (10, 12), "b.png": (8, 8)})
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--out", "o")
    assert_one_line_error(r, "every image of folder", "short side under --min-size 16", "2 images, first: a.png, 10x12",
                          "--min-size (0 keeps every image)")
    assert not (tmp_path / "o").exists()
    assert cli("prepare", "folder", "imgs", "--imsize", 32, "--min-size", 0, "--out", "o").code == 0


def test_synthetic_has_no_min_size():
    """Scenes are drawn at --imsize: there is no source image to be too small (the option is refused)."""
    import inspect

    from sagan_cli.cli import prepare

    def params(command):
        return set(inspect.signature(command).parameters)

    assert "min_size" in params(prepare.lsun) and "min_size" in params(prepare.folder)
    assert "min_size" not in params(prepare.synthetic)


# ------------------------------------------------------------------ resume and re-runs
@pytest.fixture
def interrupted(cli, tmp_path, monkeypatch):
    """``imgs/`` with 40 images (every fifth too small at 32 px) and ``o/`` interrupted after its first chunk."""
    _folder(tmp_path / "imgs", {f"{i:03d}.png": ((10, 10) if i % 5 == 0 else (24, 20)) for i in range(40)})
    monkeypatch.setattr(pipeline, "COMMIT_EVERY_S", 0.0)
    real, calls = pipeline.process_chunk, []

    def stop_on_the_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(pipeline, "process_chunk", stop_on_the_second)
    assert cli("prepare", "folder", "imgs", "--imsize", 32, "--workers", 1, "--out", "o").code == 130
    monkeypatch.setattr(pipeline, "process_chunk", real)
    state = json.loads((tmp_path / "o" / "progress.json").read_text())
    assert state["request"]["min_size"] == 16 and state["skipped_small"] == 7 and state["consumed"] == 32
    return tmp_path / "o"


def test_a_resume_with_another_min_size_is_refused_and_the_same_one_finishes(cli, interrupted):
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--min-size", 0, "--out", "o")
    assert_one_line_error(r, "holds an unfinished dataset made differently (min_size 16 → 0)", "--force")
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--out", "o")
    assert r.code == 0 and "resuming o" in r.stdout, r.stderr
    assert "8 images under --min-size 16 skipped" in r.stdout  # the skips before the interruption count too
    ds = open_dataset(interrupted)
    assert len(ds) == 32 and ds.meta["skipped_small"] == 8 and len(ds.meta["skipped"]) == 8
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--min-size", 8, "--out", "o")
    assert_one_line_error(r, "already holds a dataset made differently (min_size 16 → 8)", "--force")
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--min-size", 8, "--out", "o", "--force")
    assert r.code == 0 and len(open_dataset(interrupted)) == 40


def test_a_dataset_prepared_before_min_size_existed_counts_as_min_size_0(cli, tmp_path):
    _folder(tmp_path / "imgs")
    assert cli("prepare", "folder", "imgs", "--imsize", 32, "--min-size", 0, "--out", "o").code == 0
    meta = json.loads((tmp_path / "o" / "meta.json").read_text())
    del meta["request"]["min_size"]  # what an older sagan wrote: it kept every image
    (tmp_path / "o" / "meta.json").write_text(json.dumps(meta))
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--out", "o")
    assert_one_line_error(r, "made differently (min_size 0 → 16)")
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--min-size", 0, "--out", "o")
    assert r.code == 0 and "already prepared" in r.stdout, r.stderr
