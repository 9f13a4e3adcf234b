"""On a CUDA device: what the CPU suite cannot check. Marked ``cuda``: skipped without one; benchmarks/gpu_check.sh
runs them (`pytest -m cuda`).

* `sagan train --device cuda` with the CUDA defaults (bf16 autocast, torch.compile) writes a checkpoint that
  `sample --device cpu` opens, and spectral norm's σ stays float32 under autocast;
* a run resumed on CUDA continues from its step;
* the fused attention kernel (scaled_dot_product_attention, scale 1.0) agrees with the explicit softmax form
  in float32 and within bf16's precision under autocast;
* SWD and the mirror error give the CPU's numbers for the same images.
"""

from __future__ import annotations

import json

import pytest
import torch

from conftest import make_images

pytestmark = pytest.mark.cuda

CUDA_TINY = ["--imsize", "32", "--g-conv-dim", "16", "--d-conv-dim", "16", "--z-dim", "32", "--device", "cuda"]


@pytest.fixture
def data(tmp_path):
    from sagan_cli.data.dataset import save_dataset

    path = tmp_path / "data" / "tiny-32"
    save_dataset(path, make_images(64, 32), source="test", category=None, split=None)
    return path


def test_train_with_the_cuda_defaults_then_sample_on_the_cpu_and_resume_on_cuda(cli, data, tmp_path):
    r = cli("train", *CUDA_TINY, "--data", data, "--steps", 4, "--batch", 8, "--ckpt-every", 2, "--log-every", 1)
    assert r.code == 0, r.stderr
    assert "bf16" in r.stdout  # autocast on by default on CUDA
    [run] = (tmp_path / "runs").iterdir()
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["amp"] is True and "bfloat16" in str(config["amp_dtype"])
    losses = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"kind"' not in x]
    assert losses and all(torch.isfinite(torch.tensor([x["d_loss"], x["g_loss"]])).all() for x in losses)
    ckpt = run / "checkpoints" / "latest.pt"
    assert cli("sample", ckpt, "--seeds", "0-3", "--device", "cpu", "--out", "grid.png").code == 0
    assert (tmp_path / "grid.png").stat().st_size > 0
    r = cli("train", "--resume", ckpt, "--steps", 6, "--device", "cuda")
    assert r.code == 0, r.stderr
    assert torch.load(ckpt, weights_only=True)["step"] == 6


def test_spectral_norm_sigma_is_float32_under_bf16_autocast():
    from sagan_cli.models.config import ModelConfig
    from sagan_cli.models import build

    G, D = build(ModelConfig(imsize=32, g_conv_dim=16, d_conv_dim=16, z_dim=32))
    G, D = G.cuda(), D.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = D(G(torch.randn(4, 32, device="cuda")))
    assert out.shape == (4,) and torch.isfinite(out.float()).all()
    for name, p in D.named_parameters():
        assert p.dtype == torch.float32, name
    for name, buf in D.named_buffers():
        if name.endswith(("_u", "_v")):
            assert buf.dtype == torch.float32, name


@pytest.mark.parametrize("form", ["paper", "official"])
def test_the_fused_attention_kernel_agrees_with_the_explicit_form(form):
    from sagan_cli.models.attention import SelfAttention

    torch.manual_seed(0)
    block = SelfAttention(64, form).cuda()
    block.gamma.data.fill_(0.7)
    x = torch.randn(4, 64, 32, 32, device="cuda")
    outs = {}
    for impl in ("sdpa", "explicit"):
        block.impl = impl
        with torch.no_grad():
            outs[impl] = block(x)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                outs[impl + "-bf16"] = block(x).float()
    torch.testing.assert_close(outs["sdpa"], outs["explicit"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outs["sdpa-bf16"], outs["explicit-bf16"], rtol=0.05, atol=0.05)
    torch.testing.assert_close(outs["sdpa-bf16"], outs["explicit"], rtol=0.05, atol=0.05)


def test_swd_and_the_mirror_error_give_the_cpus_numbers():
    from sagan_cli.metrics.mirror import MirrorAccumulator
    from sagan_cli.metrics.swd import SWDAccumulator

    gen = torch.from_numpy(make_images(64, 32, seed=1))
    real = torch.from_numpy(make_images(128, 32, seed=2))
    results = {}
    for device in ("cpu", "cuda"):
        swd, mirror = SWDAccumulator(64, 128, device), MirrorAccumulator(64, 128, device)
        for acc in (swd, mirror):
            acc.feed("generated", gen)
            acc.feed("real", real)
        results[device] = {**swd.result(), **mirror.result()}
    assert results["cuda"]["mirror_error"] == results["cpu"]["mirror_error"]  # integer sums: exact
    for key, value in results["cpu"].items():
        assert results["cuda"][key] == pytest.approx(value, rel=1e-3), key
