"""Checkpoints written before the layout by layer (main at 5b6645a, no ``arch`` in their model config) still
load, sample the same pixels, map the same attention and resume (tests/fixtures/ckpt-v1-5b6645a/make.sh)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FIXTURES, assert_one_line_error

OLD = FIXTURES / "ckpt-v1-5b6645a"


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_the_fixture_predates_the_arch_field():
    state = torch.load(OLD / "ckpt.pt", weights_only=True)
    assert "arch" not in state["model_config"] and state["model_config"]["attention"] == "official"


@pytest.mark.parametrize("ema, png", [(True, "samples-ema.png"), (False, "samples-raw.png")])
def test_an_old_checkpoint_samples_identical_pixels(cli, tmp_path, ema, png):
    # the fixture's images were drawn before standing statistics existed: without them, the same pixels
    r = cli("sample", OLD / "ckpt.pt", "--seeds", "0-7", "--out", "now.png", "--device", "cpu",
            "--ema" if ema else "--no-ema", "--no-standing-stats")
    assert r.code == 0, r.stderr
    assert np.array_equal(pixels(tmp_path / "now.png"), pixels(OLD / png))
    r = cli("sample", OLD / "ckpt.pt", "--seeds", "0-7", "--out", "standing.png", "--device", "cpu",
            "--ema" if ema else "--no-ema")
    assert r.code == 0, r.stderr
    assert pixels(tmp_path / "standing.png").shape == pixels(OLD / png).shape


def test_an_old_checkpoint_maps_the_same_attention(cli, tmp_path):
    r = cli("attn-map", OLD / "ckpt.pt", "--query", "12,20", "--seeds", "0-1", "--out", "a.png",
            "--save-maps", "maps.npz", "--device", "cpu", "--no-standing-stats")
    assert r.code == 0, r.stderr
    then, now = np.load(OLD / "maps.npz"), np.load(tmp_path / "maps.npz")
    assert sorted(then.files) == sorted(now.files)
    for key in then.files:
        assert np.array_equal(then[key], now[key]), key


def test_an_old_checkpoint_resumes_as_a_dcgan_run(cli, tmp_path):
    from sagan_cli.data.prepare.synthetic import render

    run = tmp_path / "runs" / "00000-fx" / "checkpoints"
    run.mkdir(parents=True)
    shutil.copy(OLD / "ckpt.pt", run / "step-0000003.pt")
    shutil.copy(OLD / "ckpt.pt", run / "latest.pt")
    state = torch.load(OLD / "ckpt.pt", weights_only=True)
    # the dataset it was trained on, rebuilt from its recipe (prepare synthetic --count 64 --imsize 32)
    r = cli("prepare", "synthetic", "--count", "64", "--imsize", "32", "--out", "data/syn-32", "--workers", "1")
    assert r.code == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "data/syn-32/images.npy", mmap_mode="r")[5], render(0, 5, 32))
    r = cli("train", "--resume", "latest", "--steps", "5", "--data", "data/syn-32", "--device", "cpu")
    assert r.code == 0, r.stderr
    new = torch.load(run / "latest.pt", weights_only=True)
    assert new["step"] == 5 and new["model_config"]["arch"] == "dcgan"
    assert new["data"]["fingerprint"] == state["data"]["fingerprint"]


def test_a_checkpoint_naming_an_unknown_architecture_is_one_line(cli, tmp_path):
    state = torch.load(OLD / "ckpt.pt", weights_only=True)
    state["model_config"]["arch"] = "biggan"
    torch.save(state, tmp_path / "future.pt")
    assert_one_line_error(cli("sample", tmp_path / "future.pt", "--device", "cpu"), "--arch 'biggan' is not one of")
