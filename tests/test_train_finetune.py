"""`sagan train --init-from CKPT` (#17 item 2): a new run from a checkpoint's weights, its record, its resume."""

from __future__ import annotations

import hashlib
import json

import torch

from conftest import TINY, assert_one_line_error, make_images
from sagan_cli.data.dataset import save_dataset

SMALL = [*TINY, "--g-conv-dim", "8", "--d-conv-dim", "8"]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _parent(cli, data, tmp_path):
    r = cli("train", *SMALL, "--data", data, "--runs", "parent", "--steps", "2", "--batch", "8", "--sample-every", "100")
    assert r.code == 0, r.stderr
    return tmp_path / "parent/00000-tiny-32/checkpoints/latest.pt"


def _other(tmp_path):
    path = tmp_path / "data" / "other-32"
    save_dataset(path, make_images(32, 32, seed=7), source="test", category=None, split=None)
    return path


def _weights(ck: dict, net: str) -> dict:
    """The trained tensors of ``net`` (spectral norm's original weights, biases, gains): no statistics or u/v."""
    return {k: v for k, v in ck[net].items() if v.is_floating_point() and "running" not in k and not k.endswith(("_u", "_v"))}


def _ft(cli, parent, data, runs, steps, *extra):
    # no model options: the model comes from the parent (z 32, widths 8 while the defaults are 128 and 64)
    return cli("train", "--init-from", parent, "--data", data, "--runs", runs, "--steps", str(steps), "--batch", "8",
               "--device", "cpu", "--seed", "4", "--ema-start", "0", "--sample-every", "100", "--log-every", "1", *extra)


def test_a_fine_tuned_run_starts_at_step_0_from_the_parents_weights_and_records_it(cli, tiny_dataset, tmp_path):
    parent_path = _parent(cli, tiny_dataset, tmp_path)
    parent = load(parent_path)
    other = _other(tmp_path)
    r = _ft(cli, parent_path, other, "ft", 1)
    assert r.code == 0, r.stderr
    run = tmp_path / "ft/00000-other-32"
    ck = load(run / "checkpoints/latest.pt")
    assert ck["step"] == 1 and ck["model_config"] == parent["model_config"]
    assert ck["data"]["path"] == str(other) and ck["train_config"]["init_from"] == str(parent_path)
    record = {"checkpoint": str(parent_path.resolve()), "sha256": hashlib.sha256(parent_path.read_bytes()).hexdigest(),
              "step": 2, "images_seen": 16, "data": str(tiny_dataset), "data_fingerprint": parent["data"]["fingerprint"],
              "keep_optim": False}
    assert ck["parent"] == record
    assert json.loads((run / "config.json").read_text())["parent"] == record
    assert ck["opt_G"]["state"][0]["step"] == 1, "fresh optimisers: one Adam step, not the parent's two more"
    # one Adam step from the parent's weights moves each by about a learning rate; a fresh init is far away
    scratch = cli("train", *SMALL, "--data", other, "--runs", "scratch", "--steps", "1", "--batch", "8", "--seed", "4",
                  "--sample-every", "100")
    assert scratch.code == 0, scratch.stderr
    fresh = load(tmp_path / "scratch/00000-other-32/checkpoints/latest.pt")
    for net in ("G", "D"):
        mine, theirs, far = _weights(ck, net), _weights(parent, net), _weights(fresh, net)
        assert max((mine[k] - theirs[k]).abs().max().item() for k in mine) < 2e-3, net
        assert max((far[k] - theirs[k]).abs().max().item() for k in far) > 1e-2, net
    # the EMA (no start delay here) went on from the parent's G_ema: one lerp of 0.001 towards G
    lerped = {k: torch.lerp(v, ck["G"][k], 0.001) for k, v in _weights(parent, "G_ema").items()}
    assert max((lerped[k] - v).abs().max().item() for k, v in _weights(ck, "G_ema").items()) < 1e-6

    out = cli("sample", run / "checkpoints/latest.pt", "--seeds", "0-1", "--out", tmp_path / "ft.png", "--device", "cpu")
    assert out.code == 0, out.stderr
    out = cli("info", run / "checkpoints/latest.pt")
    assert out.code == 0 and f"fine-tuned from: {parent_path.resolve()} (step 2, sha256 {record['sha256'][:16]}" in out.stdout
    out = cli("info", run / "checkpoints/latest.pt", "--json")
    assert out.code == 0 and json.loads(out.stdout)["parent"] == record


def test_keep_optim_keeps_the_parents_adam_moments_with_this_runs_learning_rates(cli, tiny_dataset, tmp_path):
    parent_path = _parent(cli, tiny_dataset, tmp_path)
    r = _ft(cli, parent_path, _other(tmp_path), "ft", 1, "--keep-optim", "--lr-g", "5e-5")
    assert r.code == 0, r.stderr
    ck = load(tmp_path / "ft/00000-other-32/checkpoints/latest.pt")
    assert ck["step"] == 1 and ck["opt_G"]["state"][0]["step"] == 3, "Adam went on from the parent's 2 steps"
    assert ck["opt_G"]["param_groups"][0]["lr"] == 5e-5 and ck["opt_D"]["param_groups"][0]["lr"] == 4e-4
    assert ck["parent"]["keep_optim"] is True


def test_a_fine_tuned_run_resumes_bit_exactly_and_keeps_its_parent(cli, tiny_dataset, tmp_path):
    parent_path = _parent(cli, tiny_dataset, tmp_path)
    other = _other(tmp_path)
    assert _ft(cli, parent_path, other, "straight", 3).code == 0
    assert _ft(cli, parent_path, other, "resumed", 2).code == 0
    r = cli("train", "--resume", "latest", "--runs", "resumed", "--steps", "3", "--device", "cpu")
    assert r.code == 0, r.stderr
    a = load(tmp_path / "straight/00000-other-32/checkpoints/latest.pt")
    b = load(tmp_path / "resumed/00000-other-32/checkpoints/latest.pt")
    assert a["step"] == b["step"] == 3 and a["parent"] == b["parent"] and b["parent"]["step"] == 2
    for net in ("G", "D", "G_ema"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs after resume"
    assert json.loads((tmp_path / "resumed/00000-other-32/config.json").read_text())["parent"] == a["parent"]
    r = cli("train", "--resume", "latest", "--runs", "resumed", "--steps", "4", "--device", "cpu",
            "--init-from", parent_path)
    assert_one_line_error(r, "--init-from starts a new run", "give one of them")


def test_what_cannot_start_a_fine_tuned_run_is_one_line_naming_it(cli, tiny_dataset, tmp_path):
    parent_path = _parent(cli, tiny_dataset, tmp_path)
    other = _other(tmp_path)
    r = _ft(cli, parent_path, other, "ft", 1, "--g-conv-dim", "16")
    assert_one_line_error(r, "--g-conv-dim 16 differs from the --init-from checkpoint's g_conv_dim 8")
    r = _ft(cli, parent_path, other, "ft", 1, "--g-attn", "8")
    assert_one_line_error(r, "--g-attn 8 differs from the --init-from checkpoint's g_attn 8,16")
    r = _ft(cli, parent_path, other, "ft", 1, "--arch", "resnet")
    assert_one_line_error(r, "--arch resnet differs from the --init-from checkpoint's arch dcgan")
    big = tmp_path / "big"
    save_dataset(big, make_images(16, 64), source="test", category=None, split=None)
    assert_one_line_error(_ft(cli, parent_path, big, "ft", 1), "is a 32px model but --data", "holds 64px images")
    labelled = tmp_path / "labelled"
    save_dataset(labelled, make_images(16, 32), labels=torch.arange(16).numpy() % 2, classes=["a", "b"])
    assert_one_line_error(_ft(cli, parent_path, labelled, "ft", 1), "num_classes differs", "unconditional", "2 classes")
    assert _ft(cli, parent_path, labelled, "ft-uncond", 1, "--unconditional").code == 0, "its labels ignored: it fits"
    g = tmp_path / "G.safetensors"
    assert cli("export", parent_path, "--out", g).code == 0
    assert_one_line_error(_ft(cli, g, other, "ft", 1), "is an exported generator (no discriminator)")
    assert_one_line_error(_ft(cli, tmp_path / "nope.pt", other, "ft", 1), "no such checkpoint file")
    assert_one_line_error(cli("train", *SMALL, "--data", other, "--keep-optim"), "give --init-from CKPT too")
    assert not (tmp_path / "ft").exists(), "a refused fine-tuning leaves no run directory"
