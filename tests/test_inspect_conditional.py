"""Inference of a class-conditional checkpoint: class names from the checkpoint, `sample --class` (one class,
per-class grids, interpolation within and between classes), the uniform default, `attn-map --class` and
`evaluate --class / --per-class`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error, make_images
from sagan_cli.inspect.classes import class_names, parse_classes, uniform_labels
from sagan_cli.util.errors import SaganError

CLASSES = ["disc", "square", "stripe"]
PAD = 2  # the grid's padding (util/images.grid)


def make_ckpt(path, classes=CLASSES, arch="dcgan"):
    """A conditional checkpoint by hand: tiny nets whose per-class gains and biases differ (at init every
    class would draw the same image), the dataset's class names in its data record."""
    from sagan_cli.models import build
    from sagan_cli.models.config import ModelConfig

    cfg = ModelConfig(arch=arch, imsize=32, g_conv_dim=8, d_conv_dim=8, z_dim=16, num_classes=3)
    torch.manual_seed(0)
    G, D = build(cfg)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(".gain") or name.endswith(".bias") and p.dim() == 2:
                p.add_(torch.randn_like(p))
    data = {"path": "x", "fingerprint": "f", "count": 48}
    if classes is not None:
        data["classes"] = list(classes)
    torch.save({"format": "sagan-checkpoint", "model_config": cfg.to_dict(), "step": 1, "G": G.state_dict(),
                "G_ema": G.state_dict(), "D": D.state_dict(), "data": data, "train_config": {"batch": 8}}, path)
    return path


@pytest.fixture
def ckpt(tmp_path):
    return make_ckpt(tmp_path / "cond.pt")


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def cell(img, row, col, side=32):
    y, x = PAD + row * (side + PAD), PAD + col * (side + PAD)
    return img[y:y + side, x:x + side]


def test_class_names_come_from_the_checkpoint_and_old_ones_read_as_ids():
    assert class_names({"data": {"classes": CLASSES}}, 3) == CLASSES
    assert class_names({"data": {"path": "x"}}, 3) == ["0", "1", "2"]
    assert class_names({}, 0) == []
    assert parse_classes("square", CLASSES) == [1]
    assert parse_classes("0-2", CLASSES) == [0, 1, 2]
    assert parse_classes("stripe,0", CLASSES) == [2, 0]
    with pytest.raises(SaganError, match="class ids run 0-2"):
        parse_classes("3", CLASSES)
    with pytest.raises(SaganError, match="no class of that name.*disc, square, stripe"):
        parse_classes("cat", CLASSES)
    with pytest.raises(SaganError, match="unconditional"):
        parse_classes("0", [])


def test_training_records_the_class_names_in_the_checkpoint(cli, tmp_path):
    from sagan_cli.data.dataset import save_dataset

    data = tmp_path / "data" / "abc-32"
    save_dataset(data, make_images(24, 32), labels=np.arange(24) % 3, classes=CLASSES, source="test",
                 category=None, split=None)
    r = cli("train", "--imsize", "32", "--g-conv-dim", "8", "--d-conv-dim", "8", "--z-dim", "16", "--device", "cpu",
            "--data", data, "--batch", "8", "--steps", "1")
    assert r.code == 0, r.stderr
    state = torch.load(tmp_path / "runs/00000-abc-32/checkpoints/latest.pt", weights_only=True)
    assert state["data"]["classes"] == CLASSES
    r = cli("sample", tmp_path / "runs/00000-abc-32/checkpoints/latest.pt", "--class", "stripe", "-n", "2",
            "--out", "s.png", "--no-standing-stats")
    assert r.code == 0, r.stderr
    assert "class 2 (stripe)" in r.stdout


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_one_class_equals_its_row_of_the_per_class_grid_and_a_name_its_id(cli, tmp_path, arch):
    ckpt = make_ckpt(tmp_path / f"{arch}.pt", arch=arch)
    assert cli("sample", ckpt, "--class", "0-2", "-n", "4", "--out", "all.png").code == 0
    assert cli("sample", ckpt, "--class", "2", "-n", "4", "--nrow", "4", "--out", "two.png").code == 0
    assert cli("sample", ckpt, "--class", "stripe", "-n", "4", "--nrow", "4", "--out", "name.png").code == 0
    grid, two = pixels("all.png"), pixels("two.png")
    assert grid.shape[:2] == (3 * 34 + 2, 4 * 34 + 2)  # one row per class, one column per seed
    np.testing.assert_array_equal(grid[2 * 34:3 * 34 + 2], two)
    np.testing.assert_array_equal(pixels("name.png"), two)
    assert not np.array_equal(cell(grid, 0, 0), cell(grid, 1, 0))  # the classes differ at the same z


def test_uniform_default_is_said_and_deterministic_per_seed(cli, ckpt):
    r = cli("sample", ckpt, "-n", "6", "--nrow", "6", "--out", "a.png")
    assert r.code == 0, r.stderr
    assert "classes drawn uniformly" in r.stdout
    assert cli("sample", ckpt, "--seeds", "3", "--out", "b.png").code == 0
    np.testing.assert_array_equal(cell(pixels("a.png"), 0, 3), pixels("b.png")[PAD:PAD + 32, PAD:PAD + 32])
    labels = uniform_labels(range(6), 3)
    assert cli("sample", ckpt, "--seeds", "3", "--class", str(labels[3]), "--out", "c.png").code == 0
    np.testing.assert_array_equal(pixels("b.png"), pixels("c.png"))
    assert uniform_labels(range(6), 3) == labels and set(uniform_labels(range(200), 3)) == {0, 1, 2}


def test_interpolation_within_a_class_and_between_classes_at_fixed_z(cli, ckpt):
    assert cli("sample", ckpt, "--class", "1", "--seeds", "0,1", "--interpolate", "4", "--out", "in.png").code == 0
    assert cli("sample", ckpt, "--class", "1", "--seeds", "0,1", "--nrow", "2", "--out", "ends.png").code == 0
    within, ends = pixels("in.png"), pixels("ends.png")
    np.testing.assert_array_equal(cell(within, 0, 0), cell(ends, 0, 0))
    np.testing.assert_array_equal(cell(within, 0, 3), cell(ends, 0, 1))
    r = cli("sample", ckpt, "--class", "disc,stripe", "--seeds", "5", "--interpolate", "3", "--out", "walk.png")
    assert r.code == 0, r.stderr
    assert "1 class interpolations" in r.stdout
    assert cli("sample", ckpt, "--class", "0,2", "--seeds", "5", "-n", "1", "--out", "pc.png").code != 0  # -n and --seeds
    assert cli("sample", ckpt, "--class", "0,2", "--seeds", "5", "--out", "pc.png").code == 0
    walk, pc = pixels("walk.png"), pixels("pc.png")
    np.testing.assert_array_equal(cell(walk, 0, 0), cell(pc, 0, 0))  # endpoints: the two classes at that z
    np.testing.assert_array_equal(cell(walk, 0, 2), cell(pc, 1, 0))
    assert not np.array_equal(cell(walk, 0, 1), cell(walk, 0, 0))


def test_several_classes_into_an_outdir_name_the_class(cli, ckpt, tmp_path):
    r = cli("sample", ckpt, "--class", "0,2", "--seeds", "0-1", "--outdir", "imgs")
    assert r.code == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "imgs").iterdir()) == [
        "seed000000-class0.png", "seed000000-class2.png", "seed000001-class0.png", "seed000001-class2.png"]


def test_class_of_an_unconditional_checkpoint_or_out_of_range_is_one_line(cli, ckpt, tmp_path):
    assert_one_line_error(cli("sample", ckpt, "--class", "7"), "--class 7", "class ids run 0-2")
    assert_one_line_error(cli("sample", ckpt, "--class", "cat"), "--class 'cat'", "no class of that name")
    assert_one_line_error(cli("sample", ckpt, "--class", "0-2", "--nrow", "3"), "--nrow has no effect")


def test_attn_map_of_a_class_draws_that_class_and_feeds_d_its_labels(cli, ckpt, tmp_path):
    r = cli("attn-map", ckpt, "--query", "10,12", "--seeds", "0-1", "--class", "square", "--save-maps", "m.npz",
            "--out", "f.png")
    assert r.code == 0, r.stderr  # D's layers too: a conditional D refuses to run without labels
    maps = np.load(tmp_path / "m.npz")
    assert cli("sample", ckpt, "--seeds", "0-1", "--class", "1", "--nrow", "2", "--out", "s.png").code == 0
    s = pixels("s.png")
    for i in range(2):
        np.testing.assert_array_equal(maps["images"][i], cell(s, 0, i))
    r = cli("attn-map", ckpt, "--query", "10,12", "--seeds", "0-1", "--save-maps", "u.npz", "--out", "g.png")
    assert r.code == 0 and "classes drawn uniformly" in r.stdout
    assert cli("attn-map", ckpt, "--query", "1,1", "--class", "0,1").code != 0


@pytest.fixture
def labelled(tmp_path):
    """12 images of class 0, 10 of class 1, 2 of class 2 (too few for SWD's 4), interleaved."""
    from sagan_cli.data.dataset import save_dataset

    labels = np.array([0, 1] * 10 + [0, 2, 0, 2])
    path = tmp_path / "labelled"
    save_dataset(path, make_images(len(labels), 32, seed=3), labels=labels, classes=CLASSES, source="test",
                 category=None, split=None)
    return path, labels


def swd_json(cli, *args):
    import json

    r = cli("evaluate", *args, "--swd", "--device", "cpu", "--json")
    assert r.code == 0, r.stderr
    return json.loads(r.stdout), r.stderr


def test_evaluate_class_uses_only_that_class_real_images(cli, ckpt, labelled, tmp_path):
    from sagan_cli.data.dataset import open_dataset, save_dataset

    path, labels = labelled
    only = tmp_path / "only1"
    save_dataset(only, np.asarray(open_dataset(path).images)[labels == 1], source="test", category=None, split=None)
    a, _ = swd_json(cli, ckpt, "--class", "square", "--data", path, "-n", "8")
    b, err = swd_json(cli, ckpt, "--class", "1", "--data", only, "-n", "8")
    assert a["num_real"] == 10 and "of class 1" in a["real"] and a["class"] == 1 and a["class_name"] == "square"
    assert "has no labels" in err  # an unlabelled real side is all of it, said once
    assert a["swd"] == b["swd"]
    u, err = swd_json(cli, ckpt, "--data", path, "-n", "8")
    assert "classes drawn uniformly" in err
    assert u["labels"] == "uniform" and u["num_real"] == 24 and u == {**u, **swd_json(cli, ckpt, "--data", path, "-n", "8")[0],
                                                                         "time": u["time"], "seconds": u["seconds"]}


def test_evaluate_per_class_reports_each_class_and_says_which_were_skipped(cli, ckpt, labelled):
    path, _ = labelled
    result, err = swd_json(cli, ckpt, "--per-class", "--data", path)
    assert [r["class"] for r in result["classes"]] == [0, 1]
    assert [r["num_real"] for r in result["classes"]] == [12, 10]
    assert result["skipped"] == [{"class": 2, "class_name": "stripe", "reason": "2 real images, the metrics need at least 4"}]
    assert "class 2 (stripe) skipped" in err
    one, _ = swd_json(cli, ckpt, "--class", "0", "--data", path, "-n", "12")
    assert result["classes"][0]["swd"] == one["swd"]
    r = cli("evaluate", ckpt, "--per-class", "--swd", "--data", path, "--device", "cpu")
    assert r.code == 0 and "skipped: class 2 (stripe)" in r.stdout


def test_evaluate_per_class_needs_labels(cli, ckpt, tmp_path):
    from sagan_cli.data.dataset import save_dataset

    save_dataset(tmp_path / "plain", make_images(8, 32), source="test", category=None, split=None)
    assert_one_line_error(cli("evaluate", ckpt, "--per-class", "--swd", "--data", tmp_path / "plain", "--device", "cpu"),
                          "--per-class needs labelled real images")


def test_train_eval_every_evaluates_a_conditional_model_with_uniform_labels(cli, labelled, tmp_path):
    import json

    path, _ = labelled
    r = cli("train", "--imsize", "32", "--g-conv-dim", "8", "--d-conv-dim", "8", "--z-dim", "16", "--device", "cpu",
            "--data", path, "--batch", "8", "--steps", "2", "--eval-every", "2", "--eval-metrics", "swd", "--eval-num", "8")
    assert r.code == 0, r.stderr
    lines = (tmp_path / "runs/00000-labelled/metrics.jsonl").read_text().splitlines()
    evals = [json.loads(ln) for ln in lines if '"eval"' in ln]
    assert [e["step"] for e in evals] == [2] and np.isfinite(evals[0]["swd"])


def test_preset_imagenet128_resolves_the_authors_setting_and_given_options_win(cli, labelled, tmp_path):
    import json

    path, _ = labelled
    r = cli("train", "--preset", "imagenet128", "--imsize", "32", "--g-conv-dim", "8", "--d-conv-dim", "8",
            "--z-dim", "16", "--batch", "8", "--steps", "1", "--lr-g", "2e-4", "--device", "cpu", "--data", path)
    assert r.code == 0, r.stderr
    config = json.loads((tmp_path / "runs/00000-labelled/config.json").read_text())
    m, t = config["model"], config["train"]
    assert (m["arch"], m["attention"], m["init"], m["imsize"], m["num_classes"]) == ("resnet", "official", "xavier", 32, 3)
    assert m["g_attn"] == [8] and m["d_attn"] == [8]  # the authors' placement, imsize/4
    assert (t["preset"], t["lr_g"], t["lr_d"], t["beta1"], t["beta2"], t["batch"], t["ema"]) == \
        ("imagenet128", 2e-4, 4e-4, 0.0, 0.999, 8, True)
    r = cli("train", "--preset", "imagenet128", "--device", "cpu", "--data", path, "--steps", "1")
    assert_one_line_error(r, "128")  # the preset's 128 px is not this 32-px dataset's size
    assert_one_line_error(cli("train", "--preset", "imagenet64", "--data", path), "--preset 'imagenet64'", "imagenet128")


def test_a_checkpoint_without_class_names_samples_by_id(cli, tmp_path):
    old = make_ckpt(tmp_path / "old.pt", classes=None)  # written before the names were recorded
    r = cli("sample", old, "--class", "1", "-n", "2", "--out", "o.png")
    assert r.code == 0 and "class 1 (1)" in r.stdout
    assert_one_line_error(cli("sample", old, "--class", "square"), "no class of that name", "0, 1, 2")


def test_an_exported_generator_keeps_the_class_names(cli, ckpt):
    r = cli("export", ckpt, "--out", "G.safetensors")
    assert r.code == 0, r.stderr
    assert cli("sample", "G.safetensors", "--class", "stripe", "-n", "2", "--out", "e.png").code == 0
    assert cli("sample", ckpt, "--class", "2", "-n", "2", "--out", "c.png").code == 0
    np.testing.assert_array_equal(pixels("e.png"), pixels("c.png"))
