"""The `resnet` architecture (the authors' released model): shapes, widths, attention, the CLI end to end."""

from __future__ import annotations

import re

import pytest
import torch

from conftest import REPO, TINY, assert_one_line_error
from sagan_cli.models import attention_layers, build
from sagan_cli.models.config import ModelConfig
from sagan_cli.models.resnet import DBlock, GBlock
from sagan_cli.util.errors import SaganError

RESNET = ["--arch", "resnet", "--imsize", "32", "--g-conv-dim", "8", "--d-conv-dim", "8", "--z-dim", "16", "--device", "cpu"]


def tiny(imsize, **kw):
    kw.setdefault("g_conv_dim", 8)
    kw.setdefault("d_conv_dim", 8)
    return ModelConfig(arch="resnet", imsize=imsize, z_dim=16, **kw)


@pytest.mark.parametrize("imsize", [32, 64, 128, 256])
def test_every_supported_size_builds_and_returns_images_logits_and_attention_rows_summing_to_one(imsize):
    torch.manual_seed(0)
    cfg = tiny(imsize)
    G, D = build(cfg)
    assert cfg.attention == "official" and cfg.g_attn == (imsize // 4,) and cfg.d_attn == (imsize // 4,)
    weights: dict = {}
    x = G(torch.randn(2, cfg.z_dim), attn_weights=weights)
    assert x.shape == (2, 3, imsize, imsize) and x.abs().max() <= 1.0
    logits = D(x, attn_weights=weights)
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    r = imsize // 4
    assert sorted(weights) == sorted([f"g{r}", f"d{r}"])
    for w in weights.values():
        assert w.shape == (2, r * r, r * r // 4)  # official form: keys and values 2×2 max-pooled
        torch.testing.assert_close(w.sum(-1), torch.ones(2, r * r))


@pytest.mark.parametrize("form", ["paper", "official"])
def test_every_parameter_gets_a_gradient_with_attention_in_both_nets_at_several_places(form):
    torch.manual_seed(1)
    cfg = tiny(32, attention=form, g_attn=(4, 8, 16), d_attn=(16, 8, 4))
    G, D = build(cfg)
    for m in attention_layers(G, D).values():
        m.gamma.data.fill_(0.5)  # γ = 0 would zero the attention convs' gradients
    D(G(torch.randn(3, cfg.z_dim))).sum().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_128px_widths_and_attention_are_the_authors():
    cfg = ModelConfig(arch="resnet", imsize=128)
    G, D = build(cfg)
    assert G.linear.out_features == 64 * 16 * 16
    assert [(b.conv1.in_channels, b.conv2.out_channels) for b in G.blocks] == [
        (1024, 1024), (1024, 512), (512, 256), (256, 128), (128, 64)]
    assert G.to_rgb.in_channels == 64 and G.attn["32"].channels == 256
    assert [b.conv2.out_channels for b in D.blocks] == [64, 128, 256, 512, 1024]
    assert D.blocks[0].first and not any(b.first for b in D.blocks[1:])
    assert D.last_block.shortcut is None and not D.last_block.downsample  # the 4×4 block: identity shortcut
    assert D.attn["32"].channels == 128 and D.linear.in_features == 1024
    assert not hasattr(D, "projection")


def test_blocks_compute_what_the_authors_blocks_do():
    """The up-block's shortcut is conv-then-upsample (cheaper), which equals their upsample-then-conv."""
    torch.manual_seed(2)
    blk = GBlock(8, 4, num_classes=0).eval()
    x = torch.randn(2, 8, 4, 4)
    up = torch.nn.functional.interpolate
    ref = blk.conv2(torch.relu(blk.bn2(blk.conv1(up(torch.relu(blk.bn1(x)), scale_factor=2)))))
    ref = ref + blk.shortcut(up(x, scale_factor=2))
    torch.testing.assert_close(blk(x, None), ref, rtol=1e-5, atol=1e-6)
    d = DBlock(4, 8).eval()
    pool = torch.nn.functional.avg_pool2d
    x = torch.randn(2, 4, 8, 8)
    ref = pool(d.conv2(torch.relu(d.conv1(torch.relu(x)))), 2) + pool(d.shortcut(x), 2)
    torch.testing.assert_close(d(x), ref)
    first = DBlock(3, 8, first=True).eval()
    x = torch.randn(2, 3, 8, 8)
    ref = pool(first.conv2(torch.relu(first.conv1(x))), 2) + first.shortcut(pool(x, 2))
    torch.testing.assert_close(first(x), ref)


def test_unsupported_size_is_refused_naming_the_supported_ones():
    with pytest.raises(SaganError, match=r"--arch resnet does not support imsize 512 \(supported: 32, 64, 128, 256\)"):
        ModelConfig(arch="resnet", imsize=512)


def test_attention_width_check_uses_resnets_g_widths():
    # G's 16x16 map at 32 px has 2·g_conv_dim channels in resnet (dcgan: g_conv_dim)
    ModelConfig(arch="resnet", imsize=32, g_conv_dim=4, g_attn=(16,), d_attn=())
    with pytest.raises(SaganError, match="too narrow"):
        ModelConfig(arch="resnet", imsize=32, g_conv_dim=2, g_attn=(16,), d_attn=())


# ---------------------------------------------------------------- docs/model.md's parameter counts

COUNT_ROW = re.compile(r"^\|\s*`(\w+)`\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*([\d,]+)\s*\|\s*([\d,]+)\s*\|")


def documented_counts():
    rows = [COUNT_ROW.match(line) for line in (REPO / "docs/model.md").read_text().splitlines()]
    return [(m[1], int(m[2]), int(m[3]), int(m[4].replace(",", "")), int(m[5].replace(",", ""))) for m in rows if m]


def test_docs_give_counts_for_both_archs_at_32_64_128_and_1000_classes():
    rows = {(a, s, k) for a, s, k, _, _ in documented_counts()}
    for arch in ("dcgan", "resnet"):
        assert {(arch, s, 0) for s in (32, 64, 128)} | {(arch, 128, 1000)} <= rows


@pytest.mark.parametrize("arch,imsize,classes,n_g,n_d", documented_counts())
def test_documented_parameter_count(arch, imsize, classes, n_g, n_d):
    G, D = build(ModelConfig(arch=arch, imsize=imsize, num_classes=classes))
    assert (sum(p.numel() for p in G.parameters()), sum(p.numel() for p in D.parameters())) == (n_g, n_d)


# ---------------------------------------------------------------- through the CLI


def test_resnet_trains_samples_and_draws_an_attention_map_through_the_cli(cli, tiny_dataset, tmp_path):
    r = cli("train", *RESNET, "--data", tiny_dataset, "--steps", "2", "--batch", "8", "--ema-start", "1",
            "--init", "xavier", "--sample-every", "2")
    assert r.code == 0, r.stderr
    ckpt = torch.load(tmp_path / "runs/00000-tiny-32/checkpoints/latest.pt", map_location="cpu", weights_only=True)
    mc = ckpt["model_config"]
    assert (mc["arch"], mc["attention"], mc["init"], mc["num_classes"], mc["g_attn"], mc["d_attn"]) == (
        "resnet", "official", "xavier", 0, [8], [8])
    assert "linear.parametrizations.weight.original" in ckpt["G"] and "last_block.conv1.bias" in ckpt["D"]
    assert (tmp_path / "runs/00000-tiny-32/samples/step-0000002.png").exists()
    latest = "runs/00000-tiny-32/checkpoints/latest.pt"
    r = cli("sample", latest, "-n", "4", "--out", "s.png")
    assert r.code == 0, r.stderr
    assert (tmp_path / "s.png").exists()
    r = cli("attn-map", latest, "--query", "12,20", "--out", "a.png")
    assert r.code == 0, r.stderr
    assert (tmp_path / "a.png").exists()


def test_resnet_n_plus_resume_plus_n_steps_is_bit_identical_to_2n_steps(cli, tiny_dataset, tmp_path):
    common = (*RESNET, "--data", tiny_dataset, "--batch", "8", "--ema-start", "1", "--sample-every", "100")
    assert cli("train", *common, "--steps", "4", "--runs", "straight").code == 0
    assert cli("train", *common, "--steps", "2", "--runs", "resumed").code == 0
    r = cli("train", "--resume", "latest", "--runs", "resumed", "--steps", "4", "--device", "cpu")
    assert r.code == 0, r.stderr
    a, b = (torch.load(tmp_path / f"{d}/00000-tiny-32/checkpoints/latest.pt", map_location="cpu", weights_only=True)
            for d in ("straight", "resumed"))
    assert a["step"] == b["step"] == 4
    for part in ("G", "D", "G_ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs after resume"


def test_resnet_with_an_unsupported_size_is_one_line_through_the_cli(cli, tiny_dataset):
    r = cli("train", *TINY, "--arch", "resnet", "--imsize", "512", "--data", tiny_dataset, "--steps", "1")
    assert_one_line_error(r, "--arch resnet does not support imsize 512", "32, 64, 128, 256")
