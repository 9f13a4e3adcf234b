"""`sagan sample`: grids, one file per seed, interpolation sheets, seeds and truncation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from sagan_cli.util.errors import SaganError
from sagan_cli.inspect.sample import interpolation_latents, latent, parse_seeds, slerp



@pytest.fixture
def ckpt(cli, tiny_dataset, tmp_path):
    r = cli("train", *TINY, "--data", tiny_dataset, "--steps", "3", "--batch", "8", "--ema-start", "1")
    assert r.code == 0, r.stderr
    return tmp_path / "runs/00000-tiny-32/checkpoints/step-0000003.pt"


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_grid_png_from_only_the_checkpoint_file(cli, ckpt, tmp_path):
    alone = tmp_path / "elsewhere" / "model.pt"
    alone.parent.mkdir()
    alone.write_bytes(ckpt.read_bytes())
    import shutil

    shutil.rmtree(tmp_path / "runs")
    shutil.rmtree(tmp_path / "data")  # the dataset is not needed to sample
    r = cli("sample", alone, "-n", "16", "--out", "grid.png")
    assert r.code == 0, r.stderr
    img = Image.open(tmp_path / "grid.png")
    assert img.format == "PNG" and img.size == (4 * 34 + 2, 4 * 34 + 2)
    assert "grid.png" in r.stdout


def test_ckpt_argument_defaults_to_the_newest_run(cli, ckpt, tmp_path):
    r = cli("sample", "-n", "4")
    assert r.code == 0, r.stderr
    assert (tmp_path / "samples.png").exists() and "latest.pt" in r.stdout
    r = cli("sample", tmp_path / "runs/00000-tiny-32", "--num", "4", "--out", "from-run-dir.png")
    assert r.code == 0 and (tmp_path / "from-run-dir.png").exists()


def test_outdir_writes_one_png_per_seed_and_seeds_are_stable(cli, ckpt, tmp_path):
    assert cli("sample", ckpt, "--seeds", "3,5-6", "--outdir", "each").code == 0
    files = sorted(p.name for p in (tmp_path / "each").iterdir())
    assert files == ["seed000003.png", "seed000005.png", "seed000006.png"]
    assert pixels(tmp_path / "each/seed000005.png").shape == (32, 32, 3)
    # The same seed gives the same image whatever else is drawn with it or the batch size.
    assert cli("sample", ckpt, "--seeds", "5", "--outdir", "again", "--batch", "1").code == 0
    assert np.array_equal(pixels(tmp_path / "each/seed000005.png"), pixels(tmp_path / "again/seed000005.png"))
    # Different seeds give different images; EMA and raw G differ after averaging.
    assert not np.array_equal(pixels(tmp_path / "each/seed000003.png"), pixels(tmp_path / "each/seed000005.png"))
    assert cli("sample", ckpt, "--seeds", "5", "--outdir", "raw", "--no-ema").code == 0
    assert not np.array_equal(pixels(tmp_path / "raw/seed000005.png"), pixels(tmp_path / "each/seed000005.png"))


def test_interpolation_sheet_has_a_row_per_seed_pair_and_matching_endpoints(cli, ckpt, tmp_path):
    r = cli("sample", ckpt, "--interpolate", "5", "--seeds", "0-2", "--out", "interp.png")
    assert r.code == 0, r.stderr
    sheet = pixels(tmp_path / "interp.png")
    assert sheet.shape == (2 * 34 + 2, 5 * 34 + 2, 3)
    assert cli("sample", ckpt, "--seeds", "0-2", "--outdir", "ends").code == 0
    cell = lambda r, c: sheet[2 + r * 34 : 2 + r * 34 + 32, 2 + c * 34 : 2 + c * 34 + 32]  # noqa: E731
    assert np.array_equal(cell(0, 0), pixels(tmp_path / "ends/seed000000.png"))
    assert np.array_equal(cell(0, 4), pixels(tmp_path / "ends/seed000001.png"))
    assert np.array_equal(cell(1, 0), pixels(tmp_path / "ends/seed000001.png"))
    assert np.array_equal(cell(1, 4), pixels(tmp_path / "ends/seed000002.png"))


def test_interpolate_with_n_runs_between_seeds_0_to_n_minus_1(cli, ckpt, tmp_path):
    r = cli("sample", ckpt, "--interpolate", "3", "--num", "3", "--out", "n3.png")
    assert r.code == 0, r.stderr
    assert "2 interpolations" in r.stdout
    assert pixels(tmp_path / "n3.png").shape == (2 * 34 + 2, 3 * 34 + 2, 3)  # seeds 0-1 and 1-2, not 0..7
    assert cli("sample", ckpt, "--interpolate", "3", "--seeds", "0-2", "--out", "s3.png").code == 0
    assert np.array_equal(pixels(tmp_path / "n3.png"), pixels(tmp_path / "s3.png"))


def test_truncation_bounds_the_latent_and_changes_the_image(cli, ckpt, tmp_path):
    for s in range(20):
        z = latent(s, 128, truncation=0.5)
        assert z.abs().max() <= 0.5
    assert torch.equal(latent(7, 64, 1.0), latent(7, 64, 1.0))
    assert cli("sample", ckpt, "--seeds", "0-3", "--truncation", "0.3", "--out", "t.png").code == 0
    assert cli("sample", ckpt, "--seeds", "0-3", "--out", "u.png").code == 0
    assert not np.array_equal(pixels(tmp_path / "t.png"), pixels(tmp_path / "u.png"))


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds("0-1, 7 ,10-11") == [0, 1, 7, 10, 11]
    for bad in ("a", "3-1", "1,,2", "-4", "0-999999"):
        with pytest.raises(SaganError):
            parse_seeds(bad)


def test_slerp_keeps_endpoints_and_norm_scale():
    a, b = latent(0, 128), latent(1, 128)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-5) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert abs(mid.norm() - (a.norm() + b.norm()) / 2) < 0.1 * a.norm()  # no norm collapse as in lerp
    assert len(interpolation_latents([0, 1, 2], 4, 128, None)) == 8
