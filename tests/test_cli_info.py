"""`sagan info CKPT|RUN`: what a checkpoint holds, as lines and as --json."""

from __future__ import annotations

import json

from conftest import TINY


def test_info_describes_a_run_its_model_options_data_and_last_metrics(cli, tiny_dataset, tmp_path):
    r = cli("train", *TINY, "--g-conv-dim", "8", "--d-conv-dim", "8", "--data", tiny_dataset, "--steps", "4", "--batch", "8",
            "--log-every", "2", "--ckpt-every", "2", "--eval-every", "2", "--eval-num", "16", "--loss", "ns", "--n-dis", "2",
            "--lr-decay", "0.5", "--lr-decay-every", "2")
    assert r.code == 0, r.stderr
    run = tmp_path / "runs/00000-tiny-32"
    r = cli("info", str(run), "--json")
    assert r.code == 0, r.stderr
    info = json.loads(r.stdout)
    ckpt = run / "checkpoints/latest.pt"
    assert info["path"] == str(ckpt) and info["file_bytes"] == ckpt.stat().st_size
    assert (info["step"], info["images_seen"], info["epoch"]) == (4, 4 * 8 * 2, 0)
    assert info["model"]["arch"] == "dcgan" and info["model"]["imsize"] == 32 and info["model"]["g_attn"] == [8, 16]
    import torch

    from sagan_cli.models import build
    from sagan_cli.models.config import ModelConfig

    G, D = build(ModelConfig.from_dict(info["model"]))
    assert info["parameters"] == {"G": sum(p.numel() for p in G.parameters()), "D": sum(p.numel() for p in D.parameters())}
    assert info["train"]["loss"] == "ns" and info["train"]["n_dis"] == 2 and info["lr"] == {"g": 2.5e-5, "d": 1e-4}
    assert info["data"]["path"] == str(tiny_dataset) and info["data"]["fingerprint"].startswith("sha256:")
    assert info["last_log"]["step"] == 4 and "d_loss" in info["last_log"]
    assert [e["step"] for e in info["evals"]] == [2, 4] and info["best"]["key"] == "swd"
    # an older checkpoint of the run: the records up to its own step
    older = json.loads(cli("info", str(run / "checkpoints/step-0000002.pt"), "--json").stdout)
    assert older["step"] == 2 and older["last_log"]["step"] == 2 and [e["step"] for e in older["evals"]] == [2]
    # the lines a terminal gets
    r = cli("info", str(ckpt))
    assert r.code == 0, r.stderr
    out = r.stdout
    for text in ("step 4 of 4, 64 images seen (epoch 0)", "model: dcgan 32px, z 32, G width 8", "unconditional",
                 f"parameters: G {info['parameters']['G']:,}", "loss ns, 2 D steps per G step, batch 8",
                 "lr x0.5 every 2 steps (now 2.5e-05 / 0.0001)", f"data: {tiny_dataset} (64 images, sha256:",
                 "last log (step 4): d_loss", "last eval (step 4, 2 in all): swd", "best swd"):
        assert text in out, (text, out)
    assert torch.load(ckpt, weights_only=True)["step"] == 4  # info writes nothing


def test_info_without_an_argument_takes_the_newest_run(cli, tiny_dataset, tmp_path):
    assert cli("train", *TINY, "--data", tiny_dataset, "--steps", "1", "--batch", "8").code == 0
    r = cli("info")
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("runs/00000-tiny-32/checkpoints/latest.pt: ") and "step 1 of 1" in r.stdout
