"""`sagan prepare synthetic`: the built-in mirrored-scenes dataset."""

from __future__ import annotations

import numpy as np

from sagan_cli.data.dataset import find_latest_dataset, open_dataset
from sagan_cli.data.prepare.synthetic import render


def test_synthetic_default_out_and_train_finds_it(cli, tmp_path):
    r = cli("prepare", "synthetic", "--imsize", 32, "--count", 300, "--workers", 1)
    assert r.code == 0, r.stderr
    path = tmp_path / "data" / "synthetic-32"
    ds = open_dataset(path, imsize=32)
    assert len(ds) == 300 and ds.meta["source"] == "synthetic" and ds.meta["seed"] == 0
    assert find_latest_dataset(tmp_path / "data", 32) == path


def test_synthetic_is_deterministic_and_seed_dependent(cli, tmp_path):
    assert cli("prepare", "synthetic", "--imsize", 32, "--count", 600, "--seed", 3, "--out", "a", "--workers", 1).code == 0
    assert cli("prepare", "synthetic", "--imsize", 32, "--count", 600, "--seed", 3, "--out", "b", "--workers", 2).code == 0
    assert cli("prepare", "synthetic", "--imsize", 32, "--count", 600, "--seed", 4, "--out", "c").code == 0
    a = (tmp_path / "a" / "images.npy").read_bytes()
    assert a == (tmp_path / "b" / "images.npy").read_bytes()
    assert a != (tmp_path / "c" / "images.npy").read_bytes()
    assert open_dataset(tmp_path / "a").fingerprint == open_dataset(tmp_path / "b").fingerprint


def test_synthetic_scenes_are_mirrored_and_varied():
    ims = np.stack([render(0, i, 32) for i in range(64)])
    np.testing.assert_array_equal(ims, ims[..., ::-1])  # the left half predicts the right half
    assert len({im.tobytes() for im in ims}) == 64
    # shapes stand out from the background: strong local contrast inside each half
    contrast = np.abs(np.diff(ims[..., :16].astype(int), axis=3)).max(axis=(1, 2, 3))
    assert (contrast > 40).mean() > 0.9
    assert ims.std() > 30


def test_synthetic_default_count_is_10000(cli, tmp_path):
    r = cli("prepare", "synthetic", "--imsize", 32, "--max-images", 5, "--out", "o")
    assert r.code == 0, r.stderr
    meta = open_dataset(tmp_path / "o").meta
    assert meta["count"] == 5 and meta["source_entries"] == 10_000
