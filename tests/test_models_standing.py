"""Standing statistics: G's BatchNorm statistics re-estimated for its weights (BigGAN's standing stats)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY
from metrics_helpers import home, weights_file  # noqa: F401  (home is a fixture)
from sagan_cli.models import build
from sagan_cli.models.config import ModelConfig
from sagan_cli.models.standing import apply_standing_stats, batch_norms, training_batch

CFG = ModelConfig(imsize=32, z_dim=16, g_conv_dim=16, d_conv_dim=16)


def _trained_like_G(seed=0):
    """A G whose running statistics are stale (an EMA-like state): random weights, buffers set elsewhere."""
    torch.manual_seed(seed)
    G, _ = build(CFG)
    for m in batch_norms(G):
        m.running_mean.fill_(0.5)
        m.running_var.fill_(3.0)
        m.weight.data.uniform_(0.5, 1.5)
    return G.eval()


def test_one_pass_gives_exactly_the_batch_statistics_of_that_pass():
    G = _trained_like_G()
    seen = {i: [] for i in range(len(batch_norms(G)))}
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: seen[i].append(inp[0].detach().clone()))
             for i, m in enumerate(batch_norms(G))]  # append returns None: a hook's value would replace the output
    apply_standing_stats(G, CFG.z_dim, batch=8, forwards=1)
    for h in hooks:
        h.remove()
    for i, m in enumerate(batch_norms(G)):
        [x] = seen[i]
        torch.testing.assert_close(m.running_mean, x.mean(dim=(0, 2, 3)))
        torch.testing.assert_close(m.running_var, x.var(dim=(0, 2, 3), unbiased=True))
        assert m.momentum == 0.1 and not m.training  # put back as they were
    assert not G.training


def test_several_passes_average_them_and_leave_weights_spectral_vectors_and_rng_alone():
    G = _trained_like_G()
    before = {k: v.clone() for k, v in G.state_dict().items() if "running" not in k and "num_batches" not in k}
    rng = torch.random.get_rng_state()
    apply_standing_stats(G, CFG.z_dim, batch=8, forwards=4)
    assert torch.equal(torch.random.get_rng_state(), rng), "the global RNG was used"
    after = G.state_dict()
    for k, v in before.items():  # weights, BN affine parameters and the spectral-norm u/v vectors
        assert torch.equal(after[k], v), k
    assert all(int(m.num_batches_tracked) == 4 for m in batch_norms(G))
    again = apply_standing_stats(_trained_like_G(), CFG.z_dim, batch=8, forwards=4)
    for a, b in zip(batch_norms(G), batch_norms(again)):  # deterministic: a fixed seed, not the global RNG
        assert torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)


def test_the_statistics_are_those_of_the_current_weights():
    """After standing stats, eval-mode features are normalised: per-channel mean ≈ 0, var ≈ 1 before the affine."""
    G = _trained_like_G()
    first = batch_norms(G)[0]
    seen = []
    hook = first.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    z = torch.randn(256, CFG.z_dim, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        G(z)
    stale = (seen[-1].mean(dim=(0, 2, 3)) - first.running_mean).abs().mean()
    apply_standing_stats(G, CFG.z_dim, batch=64, forwards=8)
    with torch.no_grad():
        G(z)
    fresh = (seen[-1].mean(dim=(0, 2, 3)) - first.running_mean).abs().mean()
    hook.remove()
    assert fresh < 0.2 * stale, (fresh, stale)


def test_a_subclassed_batchnorm_runs_as_plain_batchnorm_while_accumulating():
    from sagan_cli.train.distributed import convert_sync_bn

    G = convert_sync_bn(_trained_like_G())
    plain = apply_standing_stats(_trained_like_G(), CFG.z_dim, batch=8, forwards=2)
    apply_standing_stats(G, CFG.z_dim, batch=8, forwards=2)
    for a, b in zip(batch_norms(G), batch_norms(plain)):
        torch.testing.assert_close(a.running_mean, b.running_mean)
        assert "forward" not in a.__dict__


def test_the_training_batch_comes_from_the_checkpoint():
    assert training_batch({"train_config": {"batch": 32}}) == 32
    assert training_batch({}) == 64


@pytest.fixture
def ckpt(cli, tiny_dataset, tmp_path):
    r = cli("train", *TINY, "--data", tiny_dataset, "--steps", "6", "--batch", "8", "--ema-start", "2")
    assert r.code == 0, r.stderr
    return tmp_path / "runs/00000-tiny-32/checkpoints/latest.pt"


def _png(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_sample_uses_standing_statistics_unless_told_not_to(cli, ckpt, tmp_path):
    from sagan_cli.inspect.sample import generate, latent
    from sagan_cli.models.load import load_generator
    from sagan_cli.util.images import grid

    assert cli("sample", ckpt, "-n", "4", "--out", "on.png").code == 0
    assert cli("sample", ckpt, "-n", "4", "--out", "off.png", "--no-standing-stats").code == 0
    on, off = _png(tmp_path / "on.png"), _png(tmp_path / "off.png")
    assert np.abs(on - off).mean() > 0.5, "standing statistics changed nothing"
    state = torch.load(ckpt, weights_only=True)
    G, cfg = load_generator(state, True, torch.device("cpu"))
    apply_standing_stats(G, cfg.z_dim, 8)  # the checkpoint's training batch
    expected = grid(generate(G, [latent(s, cfg.z_dim, None) for s in range(4)], torch.device("cpu"), 64))
    assert np.array_equal(on, expected.astype(int))


def test_evaluate_records_whether_the_statistics_were_standing(cli, ckpt, home, tmp_path, tmp_path_factory):
    weights = weights_file(tmp_path_factory, "torch-fidelity")
    args = ("evaluate", ckpt, "--num", 2, "--num-real", 4, "--device", "cpu", "--inception-weights", weights, "--json")
    on, off = cli(*args), cli(*args, "--no-standing-stats")
    assert on.code == 0 and off.code == 0, on.stderr + off.stderr
    assert json.loads(on.stdout)["standing_stats"] is True and json.loads(off.stdout)["standing_stats"] is False
    assert json.loads(on.stdout)["fid"] != json.loads(off.stdout)["fid"]
    r = cli("evaluate", "--samples", tmp_path / "x", "--no-standing-stats")
    assert r.code == 2 and "--standing-stats/--no-standing-stats applies to a checkpoint's generator" in r.stderr


def test_training_sample_grids_use_them_on_a_copy(cli, tiny_dataset, tmp_path):
    common = ["--data", tiny_dataset, "--steps", "4", "--batch", "8", "--ema-start", "1", "--sample-every", "2",
              "--ckpt-every", "2"]
    assert cli("train", *TINY, *common, "--name", "on").code == 0
    assert cli("train", *TINY, *common, "--name", "off", "--no-standing-stats").code == 0
    on, off = tmp_path / "runs/00000-on", tmp_path / "runs/00001-off"
    assert json.loads((on / "config.json").read_text())["train"]["standing_stats"] is True
    grid_on, grid_off = _png(on / "samples/step-0000004.png"), _png(off / "samples/step-0000004.png")
    assert np.abs(grid_on - grid_off).mean() > 0.5
    a = torch.load(on / "checkpoints/latest.pt", weights_only=True)
    b = torch.load(off / "checkpoints/latest.pt", weights_only=True)
    for k in a["G_ema"]:  # what training keeps is the same either way
        assert torch.equal(a["G_ema"][k], b["G_ema"][k]), k
