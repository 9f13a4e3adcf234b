"""`sagan export`: the generator alone, loadable with no unpickling, taken by sample, attn-map, evaluate and info."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY


@pytest.fixture
def run(cli, tiny_dataset, tmp_path):
    r = cli("train", *TINY, "--g-conv-dim", "8", "--d-conv-dim", "8", "--data", tiny_dataset, "--steps", "3", "--batch", "8",
            "--ema-start", "1")
    assert r.code == 0, r.stderr
    return tmp_path / "runs/00000-tiny-32"


def _pixels(path):
    return np.asarray(Image.open(path))


def test_an_exported_generator_samples_the_checkpoints_pixels_and_holds_no_pickle(cli, run, tmp_path):
    r = cli("export", str(run), "--out", "G.safetensors")
    assert r.code == 0, r.stderr
    ckpt = run / "checkpoints/latest.pt"
    assert "EMA G of" in r.stdout and "standing statistics applied" in r.stdout and "of the checkpoint's" in r.stdout
    exported = tmp_path / "G.safetensors"
    assert exported.stat().st_size < ckpt.stat().st_size / 3  # no D, no optimiser moments, no raw G
    # plain safetensors: an 8-byte length, a JSON header; our metadata is JSON strings
    from safetensors import safe_open

    with safe_open(str(exported), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
    assert json.loads(meta["format"]) == "sagan-generator" and json.loads(meta["model_config"])["imsize"] == 32
    assert json.loads(meta["ema"]) is True and json.loads(meta["standing_stats"]) is True and json.loads(meta["step"]) == 3
    state = torch.load(ckpt, weights_only=True)
    assert keys == set(state["G_ema"])
    assert cli("export", str(ckpt), "--out", "G.pt").code == 0
    pt = torch.load(tmp_path / "G.pt", weights_only=True)
    assert pt["format"] == "sagan-generator" and set(pt["G"]) == keys and "D" not in pt and "opt_G" not in pt
    # the same images as from the checkpoint (EMA, standing statistics), whichever container
    for src, png in ((ckpt, "c.png"), (exported, "s.png"), (tmp_path / "G.pt", "p.png")):
        r = cli("sample", str(src), "--seeds", "0-7", "--out", png, "--device", "cpu")
        assert r.code == 0, r.stderr
    assert np.array_equal(_pixels(tmp_path / "c.png"), _pixels(tmp_path / "s.png"))
    assert np.array_equal(_pixels(tmp_path / "c.png"), _pixels(tmp_path / "p.png"))
    # the raw G too, and the EMA-only file refuses --no-ema rather than passing EMA weights off as raw ones
    assert cli("export", str(ckpt), "--out", "raw.safetensors", "--no-ema").code == 0
    assert cli("sample", str(ckpt), "--no-ema", "--seeds", "0-7", "--out", "rc.png", "--device", "cpu").code == 0
    assert cli("sample", "raw.safetensors", "--no-ema", "--seeds", "0-7", "--out", "rs.png", "--device", "cpu").code == 0
    assert np.array_equal(_pixels(tmp_path / "rc.png"), _pixels(tmp_path / "rs.png"))
    r = cli("sample", "G.safetensors", "--no-ema", "--device", "cpu")
    assert r.code == 2 and "holds the EMA G only; drop --no-ema" in r.stderr


def test_attn_map_evaluate_and_info_take_the_exported_file(cli, run, tmp_path):
    assert cli("export", str(run), "--out", "G.safetensors").code == 0
    r = cli("attn-map", "G.safetensors", "--query", "4,5", "--out", "a.png", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert "2 layer(s)" in r.stdout  # G's two: D is not in the file
    r = cli("attn-map", "G.safetensors", "--query", "4,5", "--layers", "d", "--device", "cpu")
    assert r.code == 2 and "holds no discriminator" in r.stderr
    r = cli("evaluate", "G.safetensors", "--swd", "--num", "16", "--num-real", "16", "--data", str(run.parent.parent / "data/tiny-32"),
            "--device", "cpu")
    assert r.code == 0, r.stderr
    info = json.loads(cli("info", "G.safetensors", "--json").stdout)
    assert info["kind"] == "sagan-generator" and info["step"] == 3 and set(info["parameters"]) == {"G"}
    assert info["source"]["checkpoint"].endswith("latest.pt") and info["model"]["imsize"] == 32
    r = cli("train", "--resume", "G.safetensors", "--steps", "5", "--device", "cpu")
    assert r.code == 2 and "holds no training state" in r.stderr


def test_an_existing_file_is_kept_without_force(cli, run, tmp_path):
    (tmp_path / "G.safetensors").write_bytes(b"precious")
    r = cli("export", str(run), "--out", "G.safetensors")
    assert r.code == 2 and "exists; pass --force" in r.stderr
    assert (tmp_path / "G.safetensors").read_bytes() == b"precious"
    assert cli("export", str(run), "--out", "G.safetensors", "--force").code == 0
    assert (tmp_path / "G.safetensors").stat().st_size > 1000
