"""SWD (`sagan evaluate --swd`, sagan_cli/metrics/swd.py): the pyramid, the neighbourhoods, the sliced
Wasserstein core against closed forms, the accumulator's subsets, floor and determinism, and the CLI
with no Inception weights anywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage
import torch

from conftest import assert_one_line_error, make_images
from metrics_helpers import home, no_inception, tiny_run, weights_file  # noqa: F401
from sagan_cli.metrics import evaluate as E
from sagan_cli.metrics import sources, swd
from sagan_cli.metrics import weights as W
from sagan_cli.metrics.table import METRICS, SWD_MAX_IMAGES, SWD_MIN_SIZE

torch.set_num_threads(min(2, torch.get_num_threads()))


def _scipy_pyr_down(x):  # the definition (Karras et al.'s code): scipy convolve, mirror boundary, every 2nd pixel
    k = swd.binomial_filter().numpy()[None, None]
    return scipy.ndimage.convolve(x, k, mode="mirror")[:, :, ::2, ::2]


def _scipy_pyr_up(x):
    k = swd.binomial_filter().numpy()[None, None] * 4
    up = np.zeros(x.shape[:2] + (2 * x.shape[2], 2 * x.shape[3]), x.dtype)
    up[:, :, ::2, ::2] = x
    return scipy.ndimage.convolve(up, k, mode="mirror")


def accumulate(gen: np.ndarray, real: np.ndarray, batch: int = 64, **kw) -> swd.SWDAccumulator:
    acc = swd.SWDAccumulator(len(gen), len(real), "cpu", **kw)
    for side, images in (("generated", gen), ("real", real)):
        for start in range(0, len(images), batch):
            acc.feed(side, torch.from_numpy(np.ascontiguousarray(images[start : start + batch])))
    return acc


def swd_of(gen, real, **kw) -> dict:
    return accumulate(gen, real, **kw).result()


# ----------------------------------------------------------------------------------- the pyramid
def test_the_filter_is_the_normalised_binomial_and_the_pyramid_steps_match_scipy_mirror():
    k, taps = swd.binomial_filter(), torch.tensor([1.0, 4, 6, 4, 1])
    assert float(k.sum()) == 1.0 and torch.equal(k * 256, torch.outer(taps, taps))
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(swd.pyr_down(torch.from_numpy(x)).numpy(), _scipy_pyr_down(x), atol=1e-3)
    np.testing.assert_allclose(swd.pyr_up(torch.from_numpy(x)).numpy(), _scipy_pyr_up(x), atol=1e-3)
    assert swd.pyr_down(torch.from_numpy(x)).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("size", [16, 32, 48, 64])
def test_the_laplacian_pyramid_adds_back_up_to_the_image(size):
    x = torch.from_numpy(np.random.default_rng(size).uniform(0, 255, (2, 3, size, size)).astype(np.float32))
    levels = swd.resolutions(size)
    pyramid = swd.laplacian_pyramid(x, len(levels))
    assert [p.shape[-1] for p in pyramid] == levels
    assert torch.allclose(swd.reconstruct(pyramid), x, atol=1e-3)
    gauss = x
    for _ in levels[1:]:
        gauss = swd.pyr_down(gauss)
    assert torch.equal(pyramid[-1], gauss)  # the coarsest level is the 16-px Gaussian level itself
    if len(levels) > 1:
        assert float(pyramid[0].mean().abs()) < 2.0 < float(x.mean())  # band-pass: no brightness left


def test_levels_go_down_to_16_px():
    assert swd.resolutions(32) == [32, 16] and swd.resolutions(64) == [64, 32, 16]
    assert swd.resolutions(256) == [256, 128, 64, 32, 16] and swd.resolutions(15) == []
    assert (SWD_MIN_SIZE, SWD_MAX_IMAGES) == (swd.MIN_RES, swd.MAX_IMAGES)  # the table states them without torch


def test_neighbourhoods_are_the_7x7_windows_around_centres_at_least_3_px_inside():
    rng = np.random.default_rng(0)
    centres = swd.random_centres(rng, 500, 16)
    assert centres.shape == (500, 128, 2) and centres.min() == 3 and centres.max() == 12  # 16 - 4
    level = torch.from_numpy(rng.standard_normal((2, 3, 16, 16)).astype(np.float32))
    c = torch.from_numpy(centres[:2].astype(np.int64))
    got = swd.neighbourhoods(level, c)
    assert got.shape == (256, 3, 7, 7)
    for b, k in [(0, 0), (0, 127), (1, 5)]:
        y, x = centres[b, k]
        assert torch.equal(got[b * 128 + k], level[b, :, y - 3 : y + 4, x - 3 : x + 4])


# -------------------------------------------------------------------------- the core, closed forms
def test_one_dimensional_sliced_wasserstein_is_the_mean_absolute_sorted_difference():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(1000), rng.exponential(size=1000)
    expected = np.mean(np.abs(np.sort(a) - np.sort(b)))
    for d in (1.0, -1.0):  # a direction and its opposite give the same distance
        got = swd.sliced_wasserstein(torch.tensor(a[:, None], dtype=torch.float32),
                                     torch.tensor(b[:, None], dtype=torch.float32), torch.tensor([[d]]))
        assert got == pytest.approx(expected, rel=1e-5)


def test_a_shifted_cloud_is_at_the_shifts_mean_projected_length():
    """B = A + s (rows shuffled): every sorted projection moves by s·d, so SWD = mean over d of |s·d|."""
    rng = np.random.default_rng(2)
    a = rng.standard_normal((2000, 147)).astype(np.float32)
    s = rng.uniform(-1, 1, 147).astype(np.float32)
    b = (a + s)[rng.permutation(2000)]
    dirs = swd.random_directions(np.random.default_rng(3))
    assert dirs.shape == (147, 512) and np.allclose(np.linalg.norm(dirs, axis=0), 1, atol=1e-6)
    got = swd.sliced_wasserstein(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(dirs))
    assert got == pytest.approx(float(np.mean(np.abs(s @ dirs))), rel=1e-4)
    assert swd.sliced_wasserstein(torch.from_numpy(a), torch.from_numpy(a), torch.from_numpy(dirs)) == 0.0


def test_folded_normalisation_in_chunks_equals_normalising_first():
    rng = np.random.default_rng(4)
    desc = torch.from_numpy((rng.standard_normal((300, 147)) * 40 + 90).astype(np.float16))
    mean = torch.from_numpy(rng.uniform(80, 100, 147).astype(np.float32))
    std = torch.from_numpy(rng.uniform(30, 50, 147).astype(np.float32))
    dirs = torch.from_numpy(swd.random_directions(rng)[:, :20])
    explicit = torch.sort((((desc.float() - mean) / std) @ dirs).T, dim=1).values
    for rows in (7, 1 << 16):
        assert torch.allclose(swd.sorted_projections(desc, dirs, mean, std, rows=rows), explicit, atol=2e-5)


# ------------------------------------------------------------------------------- the accumulator
def test_a_set_against_the_same_descriptors_is_exactly_zero_and_the_floor_is_not():
    images = make_images(24, 32, seed=5)
    acc = accumulate(images[:8], images[8:])
    acc.sets["generated"] = acc.sets["real"]  # the very descriptors the real side has
    out = acc.result()
    assert out["swd"] == out["swd_32"] == out["swd_16"] == 0.0
    assert out["swd_floor"] > 0 and out["swd_images"] == 8


@pytest.mark.parametrize("kind", ["blur", "brightness"])
def test_swd_grows_as_the_generated_images_are_degraded_more(kind):
    real, base = make_images(64, 32, seed=2), make_images(32, 32, seed=1)

    def degraded(amount):
        x = base.astype(np.float32)
        if kind == "blur":
            x = scipy.ndimage.gaussian_filter(x, (0, 0, amount, amount)) if amount else x
        else:  # brighter, saturating at 255 (a pure shift would be normalised away)
            x = x + amount
        return np.clip(np.round(x), 0, 255).astype(np.uint8)

    amounts = (0, 0.5, 1, 2) if kind == "blur" else (0, 60, 120, 180)
    results = [swd_of(degraded(a), real) for a in amounts]
    key = "swd_32" if kind == "blur" else "swd"  # blur takes away the finest band first
    values = [r[key] for r in results]
    assert values == sorted(values) and len(set(values)) == len(values), values
    assert len({r["swd_floor"] for r in results}) == 1  # the floor is the real side's alone
    assert results[-1]["swd"] > 1.5 * results[0]["swd_floor"]


def test_same_inputs_same_value_whatever_the_batches():
    gen, real = make_images(20, 32, seed=6), make_images(40, 32, seed=7)
    first, again = swd_of(gen, real), swd_of(gen, real)
    assert first == again
    other = swd_of(gen, real, batch=7)
    assert other.keys() == first.keys()
    for key in first:
        assert other[key] == pytest.approx(first[key], rel=1e-5), key


def test_equal_counts_per_side_subsets_and_the_minimum():
    gen, real = make_images(30, 32, seed=8), make_images(50, 32, seed=9)
    assert swd_of(gen[:10], real)["swd_images"] == 10  # all generated, 10 + 10 of the 50 real
    assert swd_of(gen, real[:40])["swd_images"] == 20  # real // 2
    assert swd_of(gen, real, max_images=6)["swd_images"] == 6
    with pytest.raises(ValueError, match="at least 2 generated and 4 real"):
        swd.SWDAccumulator(10, 3, "cpu")
    with pytest.raises(ValueError, match="at least 16 px"):
        swd.SWDAccumulator(2, 4, "cpu").feed("generated", torch.zeros((2, 3, 8, 8), dtype=torch.uint8))


def test_float16_storage_changes_the_numbers_by_less_than_a_thousandth(monkeypatch):
    gen, real = make_images(32, 32, seed=10), make_images(64, 32, seed=11)
    half = swd_of(gen, real)
    monkeypatch.setattr(swd, "STORE", torch.float32)
    full = swd_of(gen, real)
    for key in full:
        assert half[key] == pytest.approx(full[key], rel=1e-3), key


def test_the_default_count_is_progans_for_swd_alone():
    assert E.default_num(("swd",)) == SWD_MAX_IMAGES and E.default_num(("fid", "swd")) == E.DEFAULT_NUM_GEN
    assert E.default_num(("swd",), 101) == 50 and E.default_num(("swd",), 10**6) == SWD_MAX_IMAGES
    assert E.default_num(("swd", "kid"), 101) == E.DEFAULT_NUM_GEN and E.default_num(("swd",), 3) == 2
    assert not METRICS["swd"].needs_inception and all(METRICS[m].needs_inception for m in ("fid", "is", "kid", "pr"))
    taps = E._taps({"swd": swd.SWDAccumulator(2, 4, "cpu")}, "real")
    assert E.pass_label(True, taps, "real") == "inception+swd (real)" and E.pass_label(False, taps, "generated") == \
        "swd (generated)"


# -------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run for the module: (run directory, its 64-image dataset)."""
    return tiny_run(tmp_path_factory.mktemp("swd-train"))


def test_swd_alone_needs_no_weights_and_records_every_level_the_floor_and_the_protocol(cli, trained, home,
                                                                                        no_inception, tmp_path):
    import shutil

    run = tmp_path / "runs" / trained[0].name
    shutil.copytree(trained[0], run)
    ckpt = run / "checkpoints" / "latest.pt"
    r = cli("evaluate", ckpt, "--swd", "--num", 8, "--num-real", 20, "--device", "cpu", "--json")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    keys = ["swd", "swd_32", "swd_16", "swd_floor", "swd_floor_32", "swd_floor_16"]
    assert res["metrics"] == ["swd"] and all(res[k] > 0 for k in keys) and res["swd_images"] == 8
    assert res["swd"] == pytest.approx((res["swd_32"] + res["swd_16"]) / 2)
    assert "weights" not in res and "network" not in res["protocol"] and "real_stats" not in res
    line = res["protocol"]["swd"]
    for text in ("levels 32, 16 px", "128 random 7x7 neighbourhoods", "4 repeats x 128", "seed 0",
                 "8 of 8 generated vs 8 of 20 real", "floor: those 8 real vs 8 other real"):
        assert text in line, text
    [logged] = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"kind": "eval"' in x]
    assert {k: logged[k] for k in keys} == {k: res[k] for k in keys} and logged["protocol"]["swd"] == line
    assert not (home / ".cache" / "sagan").exists()  # no statistics cache either

    # without -n, no more images are generated than SWD compares: 20 // 2; the first 8 of them are the same
    r = cli("evaluate", ckpt, "--swd", "--num-real", 20, "--device", "cpu")
    assert r.code == 0, r.stderr
    assert "10 images of 32px" in r.stdout and "10 of 10 generated vs 10 of 20 real" in r.stdout
    r = cli("evaluate", ckpt, "--swd", "--num", 8, "--num-real", 20, "--device", "cpu")
    assert r.code == 0, r.stderr
    assert f"{res['swd']:.2f}  (real-vs-real floor {res['swd_floor']:.2f})" in r.stdout
    assert "SWD ×1e3 (16 px)" in r.stdout and "network:" not in r.stdout and "SWD: Karras et al. 2018" in r.stdout

    # the same pixels as a folder (written by `sagan sample`) against --data: the same numbers
    assert cli("sample", ckpt, "--seeds", "0-7", "--outdir", "fakes").code == 0
    r = cli("evaluate", "--samples", tmp_path / "fakes", "--data", trained[1], "--num-real", 20, "--swd",
            "--device", "cpu", "--json")
    assert r.code == 0, r.stderr
    folder = json.loads(r.stdout)
    assert {k: folder[k] for k in keys} == {k: res[k] for k in keys}


def test_swd_with_fid_still_needs_the_weights(cli, trained, home, monkeypatch):
    def forbidden(self, batch):
        raise AssertionError("images were generated before the inputs were checked")

    monkeypatch.setattr(sources.GeneratorSource, "batches", forbidden)
    r = cli("evaluate", trained[0], "--swd", "--fid", "--device", "cpu")
    assert_one_line_error(r, "Inception weights were not found", "--download-weights", W.PYTORCH_FID_NAME)


def test_swd_beside_an_inception_metric_sees_the_same_images_in_its_passes(cli, trained, home, tmp_path_factory):
    """One pass per side feeds the Inception and SWD; a second run takes the real features from the
    cache and reads the real images for SWD alone: the same SWD all three ways. (KID: the Inception
    passes without FID's 2048-d eigenproblem, slow on a busy CPU.)"""
    weights = ["--inception-weights", weights_file(tmp_path_factory)]
    common = [trained[0], "--num", 2, "--num-real", 4, "--device", "cpu", "--json", "--batch", 4]
    r = cli("evaluate", *common, "--swd")
    assert r.code == 0, r.stderr
    alone = json.loads(r.stdout)
    both = [cli("evaluate", *common, "--swd", "--kid", *weights) for _ in range(2)]
    for r in both:
        assert r.code == 0, r.stderr
    first, cached = (json.loads(r.stdout) for r in both)
    assert first["metrics"] == ["kid", "swd"] and np.isfinite(first["kid_mean"]) and cached["real_stats_cached"]
    assert "network" in first["protocol"] and "2 of 2 generated vs 2 of 4 real" in first["protocol"]["swd"]
    for key in ("swd", "swd_32", "swd_16", "swd_floor", "swd_floor_16"):
        assert first[key] == cached[key] == pytest.approx(alone[key], rel=1e-6), key
