"""`sagan train --config runs/X/config.json`: a run's resolved options replayed into a new run, flags overriding."""

from __future__ import annotations

import json

import torch

from conftest import TINY

SMALL = [*TINY, "--g-conv-dim", "8", "--d-conv-dim", "8"]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_a_replayed_config_is_the_same_run_again_and_flags_override(cli, tiny_dataset, tmp_path):
    r = cli("train", *SMALL, "--data", tiny_dataset, "--steps", "3", "--batch", "8", "--seed", "7", "--loss", "ns",
            "--n-dis", "2", "--ema-start", "1", "--sample-every", "100", "--name", "orig")
    assert r.code == 0, r.stderr
    first = tmp_path / "runs/00000-orig"
    # nothing but the config and the device: data, model, seed, loss, n-dis and the run's name come from the file
    r = cli("train", "--config", str(first / "config.json"), "--device", "cpu")
    assert r.code == 0, r.stderr
    again = tmp_path / "runs/00001-orig"
    a, b = (json.loads((run / "config.json").read_text()) for run in (first, again))
    assert a["model"] == b["model"] and a["train"] == b["train"]
    ca, cb = load(first / "checkpoints/latest.pt"), load(again / "checkpoints/latest.pt")
    assert all(torch.equal(ca["G"][k], cb["G"][k]) for k in ca["G"]), "a replay on the CPU is the same run"
    # a run directory works as well as its config.json; options given on the command line win
    r = cli("train", "--config", str(first), "--device", "cpu", "--steps", "4", "--lr-g", "0.0002", "--name", "changed")
    assert r.code == 0, r.stderr
    c = json.loads((tmp_path / "runs/00002-changed/config.json").read_text())
    assert (c["train"]["steps"], c["train"]["lr_g"], c["train"]["name"]) == (4, 0.0002, "changed")
    assert {k: v for k, v in c["train"].items() if k not in ("steps", "lr_g", "name")} == \
        {k: v for k, v in a["train"].items() if k not in ("steps", "lr_g", "name")}
    assert c["model"] == a["model"]


def test_an_older_config_with_a_renamed_key_replays(cli, tiny_dataset, tmp_path):
    r = cli("train", *SMALL, "--data", tiny_dataset, "--steps", "1", "--batch", "8", "--num-samples", "4")
    assert r.code == 0, r.stderr
    path = tmp_path / "runs/00000-tiny-32/config.json"
    config = json.loads(path.read_text())
    config["train"]["n_samples"] = config["train"].pop("num_samples")  # the spelling of older runs
    (tmp_path / "old.json").write_text(json.dumps(config))
    r = cli("train", "--config", "old.json", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert json.loads((tmp_path / "runs/00001-tiny-32/config.json").read_text())["train"]["num_samples"] == 4
