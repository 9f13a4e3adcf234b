"""`sagan evaluate --mirror`: the mirror error, mean |x − fliplr(x)| on [0, 1] pixels, from the images alone."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from metrics_helpers import home, no_inception, tiny_run  # noqa: F401
from sagan_cli.metrics.mirror import MirrorAccumulator, mirror_errors
from sagan_cli.metrics.table import METRICS


def test_closed_forms_a_mirrored_image_is_zero_half_black_half_white_is_one():
    sym = torch.randint(0, 256, (2, 3, 8, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    sym = torch.cat([sym, sym.flip(-1)], dim=-1)  # 8×8, exactly mirrored
    halves = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    halves[..., :4] = 255
    ramp = torch.arange(8, dtype=torch.uint8).repeat(1, 3, 8, 1)  # columns 0..7: |j - (7-j)| / 255, mean 32/8
    assert mirror_errors(sym).tolist() == [0.0, 0.0]
    assert mirror_errors(halves).tolist() == [1.0]
    assert mirror_errors(ramp).item() == pytest.approx(4.0 / 255.0, abs=1e-15)


def test_the_value_does_not_depend_on_the_batches_and_the_real_side_is_reported_when_fed():
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.integers(0, 256, (37, 3, 16, 16), dtype=np.uint8))
    whole = MirrorAccumulator(37, 0, "cpu")
    whole.feed("generated", images)
    split = MirrorAccumulator(37, 0, "cpu")
    for a, b in ((0, 5), (5, 6), (6, 37)):
        split.feed("generated", images[a:b])
    assert whole.result() == split.result() == {"mirror_error": pytest.approx(float(mirror_errors(images).mean()), abs=1e-15)}
    assert "mirror_error_real" not in whole.result()
    split.feed("real", images.flip(-1)[:3])
    assert split.result()["mirror_error_real"] == pytest.approx(float(mirror_errors(images[:3]).mean()))
    with pytest.raises(RuntimeError, match="no generated images"):
        MirrorAccumulator(1, 0, "cpu").result()


def test_the_table_entry_needs_neither_weights_nor_real_images():
    m = METRICS["mirror"]
    assert (m.flag, m.needs_inception, m.needs_real, m.headline, m.lower_is_better) == \
        ("--mirror", False, False, "mirror_error", True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("mirror-train"))


def test_evaluate_mirror_is_the_mean_over_the_sampled_images_and_beside_swd_reports_the_datas_zero(
        cli, trained, home, no_inception, tmp_path):
    run = tmp_path / "runs" / trained[0].name
    shutil.copytree(trained[0], run)
    ckpt = run / "checkpoints" / "latest.pt"
    r = cli("evaluate", ckpt, "--mirror", "--num", 8, "--device", "cpu", "--json")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["metrics"] == ["mirror"] and "mirror_error_real" not in res and "weights" not in res
    assert "8 generated images" in res["protocol"]["mirror"]
    # the same images as `sagan sample` writes them: the same value, computed here from the PNGs
    assert cli("sample", ckpt, "--seeds", "0-7", "--outdir", "fakes").code == 0
    pngs = sorted((tmp_path / "fakes").glob("*.png"))
    assert len(pngs) == 8
    pixels = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1) for p in pngs]))
    assert res["mirror_error"] == pytest.approx(float(mirror_errors(pixels).mean()), abs=1e-12)
    assert 0.01 < res["mirror_error"] < 0.5  # an untrained generator is far from mirrored

    # beside SWD, on the built-in (mirrored) data: the real images' value is exactly 0
    assert cli("prepare", "synthetic", "--imsize", 32, "--count", 40, "--out", "syn").code == 0
    r = cli("evaluate", ckpt, "--mirror", "--swd", "--num", 8, "--data", "syn", "--num-real", 20, "--device", "cpu")
    assert r.code == 0, r.stderr
    assert f"{res['mirror_error']:.4f}  (real images 0.0000)" in r.stdout
    assert "SWD ×1e3 (avg)" in r.stdout


def test_train_evaluates_the_mirror_error_during_training(cli, tmp_path):
    from conftest import TINY, make_images
    from sagan_cli.data.dataset import save_dataset

    save_dataset(tmp_path / "d", make_images(16, 32), source="test", category=None, split=None)
    r = cli("train", *TINY, "--data", "d", "--steps", 2, "--batch", 4, "--eval-every", 1, "--eval-metrics", "mirror",
            "--eval-num", 4)
    assert r.code == 0, r.stderr
    [run] = (tmp_path / "runs").iterdir()
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert [e["step"] for e in evals] == [1, 2] and all(0 < e["mirror_error"] < 1 for e in evals)
    assert (run / "checkpoints" / "best.pt").exists()
