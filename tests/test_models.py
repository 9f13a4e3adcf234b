"""The networks: shapes, gradients, attention maths, spectral norm, configuration checks."""

from __future__ import annotations

import pytest
import torch

from sagan_cli.models.config import ModelConfig, d_resolutions, g_resolutions, width
from sagan_cli.util.errors import SaganError
from sagan_cli.models import attention_layers
from sagan_cli.models.attention import SelfAttention
from sagan_cli.models.dcgan import Discriminator, Generator


def tiny(imsize, **kw):
    kw.setdefault("g_conv_dim", 8)
    kw.setdefault("d_conv_dim", 8)
    return ModelConfig(imsize=imsize, z_dim=16, **kw)


@pytest.mark.parametrize("imsize", [32, 64, 128])
@pytest.mark.parametrize("form", ["paper", "official"])
def test_shapes_finite_and_every_parameter_gets_a_gradient(imsize, form):
    torch.manual_seed(0)
    cfg = tiny(imsize, attention=form)
    G, D = Generator(cfg), Discriminator(cfg)
    # γ starts at 0, which would zero the gradient of every attention conv: move it off 0.
    for m in attention_layers(G, D).values():
        m.gamma.data.fill_(0.5)
    z = torch.randn(3, cfg.z_dim)
    x = G(z)
    assert x.shape == (3, 3, imsize, imsize)
    assert torch.isfinite(x).all() and x.abs().max() <= 1.0
    logits = D(x)
    assert logits.shape == (3,)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    for net in (G, D):
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, f"{name} got a zero gradient"


@pytest.mark.parametrize("imsize", [32, 64, 128])
def test_attention_placement_follows_resolutions(imsize):
    cfg = tiny(imsize)
    G, D = Generator(cfg), Discriminator(cfg)
    assert sorted(int(k) for k in G.attn) == sorted(cfg.g_attn)
    assert sorted(int(k) for k in D.attn) == sorted(cfg.d_attn)
    weights: dict = {}
    x = G(torch.randn(2, cfg.z_dim), attn_weights=weights)
    D(x, attn_weights=weights)
    for name, w in weights.items():
        r = int(name[1:])
        assert w.shape == (2, r * r, r * r), name
        assert (w >= 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(2, r * r))


def test_reference_64px_widths_and_default_attention():
    cfg = ModelConfig(imsize=64)
    assert cfg.g_attn == (16, 32) and cfg.d_attn == (8, 4)
    G = Generator(cfg)
    widths = [blk[0].out_channels for blk in G.blocks]
    assert widths == [512, 256, 128, 64]
    assert G.attn["16"].channels == 128 and G.attn["32"].channels == 64
    D = Discriminator(cfg)
    assert [blk[0].out_channels for blk in D.blocks] == [64, 128, 256, 512]
    assert D.attn["8"].channels == 256 and D.attn["4"].channels == 512
    assert [width(64, 64, r) for r in d_resolutions(64)] == [64, 128, 256, 512]
    assert g_resolutions(64) == [4, 8, 16, 32]


@pytest.mark.parametrize("form", ["paper", "official"])
def test_fused_and_explicit_attention_paths_agree(form):
    torch.manual_seed(1)
    attn = SelfAttention(32, form).eval()  # eval: no power iteration between the two calls
    attn.gamma.data.fill_(0.7)
    x = torch.randn(2, 32, 8, 8)
    fused = attn(x)
    found: list = []
    explicit = attn(x, weights=found)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)
    (w,) = found
    keys = 16 if form == "official" else 64
    assert w.shape == (2, 64, keys)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 64))


def test_attention_matches_the_papers_equations():
    """o_j = Σ_i softmax_i(f(x_i)ᵀ g(x_j)) h(x_i), y = γ o + x, computed by hand."""
    torch.manual_seed(2)
    attn = SelfAttention(16, "paper").eval()
    attn.gamma.data.fill_(0.3)
    x = torch.randn(1, 16, 4, 4)
    with torch.no_grad():
        f = attn.key(x).flatten(2)[0]  # d×N
        g = attn.query(x).flatten(2)[0]
        h = attn.value(x).flatten(2)[0]  # C×N
        n = f.shape[1]
        o = torch.zeros(16, n)
        for j in range(n):
            s = torch.stack([f[:, i] @ g[:, j] for i in range(n)])  # no 1/sqrt(d)
            beta = torch.softmax(s, 0)
            o[:, j] = (h * beta).sum(1)
        expected = x + 0.3 * o.view(1, 16, 4, 4)
        torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_gamma_starts_at_zero_so_attention_is_identity_at_init():
    attn = SelfAttention(16, "official")
    x = torch.randn(2, 16, 4, 4)
    assert attn.gamma.item() == 0.0
    torch.testing.assert_close(attn(x), x)


def _sn_weights(net):
    for name, module in net.named_modules():
        if hasattr(module, "parametrizations") and "weight" in module.parametrizations:
            yield name, module


@pytest.mark.parametrize("imsize", [32, 64])
def test_every_conv_is_spectrally_normalised_to_one(imsize):
    torch.manual_seed(3)
    cfg = tiny(imsize, attention="official")
    G, D = Generator(cfg), Discriminator(cfg)
    for net in (G, D):
        convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        normalised = [m for _, m in _sn_weights(net)]
        assert len(convs) == len(normalised) > 0, "a conv layer lacks spectral norm"
    for _ in range(30):  # power iterations run in train-mode forwards
        D(G(torch.randn(2, cfg.z_dim)))
    for net in (G, D):
        for name, m in _sn_weights(net):
            w = m.weight.detach()
            if isinstance(m, torch.nn.ConvTranspose2d):
                w = w.transpose(0, 1)  # normalised along the output-channel dimension
            sigma = torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2)
            assert abs(float(sigma) - 1.0) < 0.05, f"{name}: sigma {float(sigma):.3f}"


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        (dict(imsize=48), "--imsize"),
        (dict(imsize=64, g_attn=(64,)), "--g-attn 64"),
        (dict(imsize=64, d_attn=(32, 2)), "--d-attn"),
        (dict(imsize=64, attention="bogus"), "--attention"),
        (dict(imsize=32, g_conv_dim=1, g_attn=(16,)), "too narrow"),
    ],
)
def test_bad_model_config_is_a_clear_error(kwargs, fragment):
    with pytest.raises(SaganError, match=fragment):
        ModelConfig(**kwargs)


def test_attention_can_be_disabled():
    cfg = tiny(32, g_attn=(), d_attn=())
    assert not Generator(cfg).attn and not Discriminator(cfg).attn


def test_config_round_trips_through_a_dict():
    cfg = ModelConfig(imsize=128, attention="official", g_attn=(64,), d_attn=(8, 16))
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.d_attn == (16, 8)


def test_every_size_prepare_builds_has_a_model_with_g_attention_at_most_64():
    """One list of sizes (util.images.IMSIZES) for prepare, train and sample: each has a default layout."""
    from sagan_cli.util.images import IMSIZES

    assert IMSIZES == (32, 64, 128, 256, 512)
    for imsize in IMSIZES:
        cfg = ModelConfig(imsize=imsize, z_dim=8, g_conv_dim=8, d_conv_dim=8)
        assert cfg.g_attn and max(cfg.g_attn) <= 64 and max(cfg.d_attn) <= 64, imsize
    with pytest.raises(SaganError, match=r"--imsize must be one of 32, 64, 128, 256, 512, got 1024"):
        ModelConfig(imsize=1024)


def test_a_512px_model_builds_and_runs_one_forward():
    torch.manual_seed(0)
    cfg = ModelConfig(imsize=512, z_dim=8, g_conv_dim=2, d_conv_dim=2)
    assert (cfg.g_attn, cfg.d_attn) == ((32, 64), (64, 32))
    G, D = Generator(cfg), Discriminator(cfg)
    assert G.resolutions == [4, 8, 16, 32, 64, 128, 256] and D.resolutions == [256, 128, 64, 32, 16, 8, 4]
    with torch.no_grad():
        x = G(torch.randn(1, cfg.z_dim))
        assert x.shape == (1, 3, 512, 512) and torch.isfinite(x).all()
        logits = D(x)
    assert logits.shape == (1,) and torch.isfinite(logits).all()
