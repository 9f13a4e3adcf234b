"""Class conditioning (conditional BatchNorm, projection) in both architectures, --init, and the unconditional
dcgan kept exactly as it was."""

from __future__ import annotations

import hashlib

import pytest
import torch

from sagan_cli.models import attention_layers, build
from sagan_cli.models.conditioning import ConditionalBatchNorm2d
from sagan_cli.models.config import ModelConfig
from sagan_cli.models.standing import apply_standing_stats
from sagan_cli.util.errors import SaganError

ARCHS = ["dcgan", "resnet"]


def tiny(arch, **kw):
    return ModelConfig(arch=arch, imsize=32, z_dim=16, g_conv_dim=8, d_conv_dim=8, **kw)


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("arch", ARCHS)
def test_conditional_nets_need_labels_and_unconditional_ones_refuse_them(arch):
    G, D = build(tiny(arch, num_classes=3))
    z, y = torch.randn(2, 16), torch.tensor([0, 2])
    with pytest.raises(SaganError, match=r"class-conditional \(3 classes\): it needs a class label for every image"):
        G(z)
    x = G(z, y)
    with pytest.raises(SaganError, match="discriminator is class-conditional"):
        D(x)
    with pytest.raises(SaganError, match="LongTensor of 2 class ids"):
        D(x, y.float())
    assert D(x, y).shape == (2,)
    G0, D0 = build(tiny(arch))
    with pytest.raises(SaganError, match="unconditional and takes no class labels"):
        G0(z, y)
    with pytest.raises(SaganError, match="unconditional"):
        D0(x, y)


@pytest.mark.parametrize("arch", ARCHS)
def test_generator_output_depends_on_the_class_through_its_conditional_batchnorm(arch):
    torch.manual_seed(0)
    G, _ = build(tiny(arch, num_classes=4))
    cbns = [m for m in G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert cbns and all(torch.equal(m.gain, torch.ones_like(m.gain)) and torch.equal(m.bias, torch.zeros_like(m.bias))
                        for m in cbns)
    z = torch.randn(4, 16)
    G.eval()  # running statistics: each image is computed on its own, so only its label can change it
    same = [G(z, torch.full((4,), c)) for c in range(2)]
    torch.testing.assert_close(same[0], same[1])  # gain 1, bias 0: every class starts as the plain BatchNorm
    with torch.no_grad():
        for m in cbns:
            m.gain.add_(0.3 * torch.randn_like(m.gain))
            m.bias.add_(0.3 * torch.randn_like(m.bias))
    a, b = G(z, torch.tensor([0, 1, 2, 3])), G(z, torch.tensor([0, 1, 3, 3]))
    assert torch.equal(a[:2], b[:2]) and torch.equal(a[3], b[3])
    assert (a[2] - b[2]).abs().max() > 1e-3


@pytest.mark.parametrize("arch", ARCHS)
def test_discriminator_logit_depends_on_the_class_by_the_projection_term(arch):
    torch.manual_seed(1)
    _, D = build(tiny(arch, num_classes=5))
    D.eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    a, b = D(x, torch.tensor([0, 1, 2])), D(x, torch.tensor([0, 4, 2]))
    torch.testing.assert_close(a[[0, 2]], b[[0, 2]])
    assert (a[1] - b[1]).abs() > 1e-4
    # the projection is the only difference: D(x, y) - D(x, y') = <embed(y) - embed(y'), h>
    assert D.projection.embed.weight.shape[0] == 5


@pytest.mark.parametrize("arch", ARCHS)
def test_conditional_nets_train_every_parameter_and_keep_attention_maps(arch):
    torch.manual_seed(2)
    cfg = tiny(arch, num_classes=3)
    G, D = build(cfg)
    for m in attention_layers(G, D).values():
        m.gamma.data.fill_(0.5)
    y = torch.tensor([0, 1, 2, 1])
    weights: dict = {}
    x = G(torch.randn(4, 16), y, attn_weights=weights)
    D(x, y, attn_weights=weights).sum().backward()
    assert weights and all(torch.allclose(w.sum(-1), torch.ones(())) for w in weights.values())
    for net in (G, D):
        for name, p in net.named_parameters():
            if name.endswith(("gain", "bias")) and p.ndim == 2:  # per-class rows: only the classes in the batch
                assert p.grad[y].abs().sum() > 0, name
                continue
            assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("arch", ARCHS)
def test_conditioning_adds_exactly_the_class_parameters(arch):
    G0, D0 = build(tiny(arch))
    G, D = build(tiny(arch, num_classes=10))
    bn_channels = sum(m.num_features for m in G0.modules() if isinstance(m, torch.nn.BatchNorm2d) and m is not getattr(G0, "bn", None))
    affine = sum(2 * m.num_features for m in G0.modules() if isinstance(m, torch.nn.BatchNorm2d) and m is not getattr(G0, "bn", None))
    assert n_params(G) - n_params(G0) == 2 * 10 * bn_channels - affine  # per-class gain and bias replace the affine
    pooled = D0.linear.in_features if arch == "resnet" else D0.last.in_channels
    assert n_params(D) - n_params(D0) == 10 * pooled


def test_standing_statistics_of_a_conditional_generator_draw_labels():
    torch.manual_seed(3)
    G, _ = build(tiny("resnet", num_classes=3))
    apply_standing_stats(G, 16, batch=4, forwards=2)
    bn = G.blocks[0].bn1.bn
    assert int(bn.num_batches_tracked) == 2 and not torch.equal(bn.running_var, torch.ones_like(bn.running_var))


# ---------------------------------------------------------------- --init


def raw_weights(net):
    return {k: v.clone() for k, v in net.state_dict().items() if k.endswith(("original", "weight")) and v.ndim > 1}


@pytest.mark.parametrize("arch", ARCHS)
def test_default_init_is_pytorchs_and_xavier_and_ortho_change_the_weights(arch):
    built = {}
    for kind in ("default", "xavier", "ortho"):
        torch.manual_seed(4)
        built[kind] = build(tiny(arch, init=kind, num_classes=2))
    torch.manual_seed(4)
    from sagan_cli.models import ARCHITECTURES
    import importlib

    module, _, attr = ARCHITECTURES[arch].partition(":")
    plain = getattr(importlib.import_module(module), attr)(tiny(arch, num_classes=2))  # the builder, no init step
    for i in (0, 1):
        ref = raw_weights(plain[i])
        assert all(torch.equal(ref[k], v) for k, v in raw_weights(built["default"][i]).items())
        for kind in ("xavier", "ortho"):
            w = raw_weights(built[kind][i])
            assert all(not torch.equal(ref[k], v) for k, v in w.items()), kind
    G, D = built["ortho"]
    for m in G.modules():
        if isinstance(m, ConditionalBatchNorm2d):
            assert torch.equal(m.gain, torch.ones_like(m.gain))  # not an init choice
    w = G.to_rgb.parametrizations.weight.original.flatten(1)
    rows = w if w.shape[0] <= w.shape[1] else w.T
    torch.testing.assert_close(rows @ rows.T, torch.eye(rows.shape[0]), atol=1e-5, rtol=0)
    # σ is re-estimated on the new weights (15 power iterations): the normalised weight has spectral norm ~1
    for net in built["xavier"]:
        for mod in net.modules():
            if hasattr(mod, "parametrizations") and mod.parametrizations.weight.original.ndim > 1:
                wn = mod.weight.detach()
                wn = (wn.transpose(0, 1) if isinstance(mod, torch.nn.ConvTranspose2d) else wn).flatten(1)
                assert abs(torch.linalg.matrix_norm(wn, 2).item() - 1) < 0.15, mod  # stale u, v: ~0.5 off


def test_unknown_init_is_refused():
    with pytest.raises(SaganError, match="--init must be one of default, xavier, ortho, got 'lecun'"):
        tiny("dcgan", init="lecun")


# ---------------------------------------------------------------- the unconditional dcgan, as it was

# Computed with the code before conditioning existed (commit 8597f3e): torch.manual_seed(1234), build, then
# the parameters' bytes (and every state-dict name and shape) hashed, two draws of the RNG after building,
# and a forward with γ = 0.3 on fixed latents (torch.manual_seed(7)).
BEFORE = {
    "paper": ("9b74e3fb0bccec1c7bd786b766a6f58381500ba0309f2b616380d5c9377d24d9", [0.9779369235038757, -1.2894024848937988],
              -5.96740341988334, 387.65675201718113, 1374.5081672269444, [-0.11993862688541412, -0.11606984585523605]),
    "official": ("4374c4efc79c156992fb66d82e4e3fdc78c623ffdc86d3be513ca11364f11957", [0.013658229261636734, 2.0031938552856445],
                 -8.17769147339277, 256.2499825125269, 1521.1257976139605, [-0.06684521585702896, -0.06966202706098557]),
}


@pytest.mark.parametrize("form", ["paper", "official"])
def test_unconditional_dcgan_is_bit_identical_to_before_conditioning(form):
    torch.manual_seed(1234)
    cfg = ModelConfig(imsize=32, z_dim=16, g_conv_dim=8, d_conv_dim=8, attention=form)
    assert cfg.num_classes == 0 and cfg.init == "default"
    G, D = build(cfg)
    h = hashlib.sha256()
    for net in (G, D):
        for k, v in sorted(net.state_dict().items()):
            h.update(f"{k}{tuple(v.shape)}".encode())
        for _, p in sorted(net.named_parameters()):
            h.update(p.detach().contiguous().numpy().tobytes())
    after = torch.randn(2).tolist()
    torch.manual_seed(7)
    z = torch.randn(2, cfg.z_dim)
    for m in attention_layers(G, D).values():
        m.gamma.data.fill_(0.3)
    x = G(z, attn_weights={})
    logits = D(x, attn_weights={})
    u = sum(v.double().sum().item() for net in (G, D) for k, v in net.state_dict().items() if k.endswith("_u"))
    digest, rng_after, u_sum, image_sum, image_abs, ref_logits = BEFORE[form]
    assert h.hexdigest() == digest  # same parameter names, shapes and initial values
    assert after == rng_after  # the same random numbers consumed
    # the power iteration and the forward go through BLAS: exact on this machine, to rounding on another
    assert u == pytest.approx(u_sum, rel=1e-6, abs=1e-6)
    assert x.double().sum().item() == pytest.approx(image_sum, rel=1e-6)
    assert x.double().abs().sum().item() == pytest.approx(image_abs, rel=1e-6)
    assert logits.tolist() == pytest.approx(ref_logits, rel=1e-5)


def test_a_model_config_from_before_conditioning_and_init_loads_as_unconditional_default_init():
    old = {"arch": "dcgan", "imsize": 32, "z_dim": 16, "g_conv_dim": 8, "d_conv_dim": 8,
           "g_attn": [8, 16], "d_attn": [8, 4], "attention": "paper"}
    cfg = ModelConfig.from_dict(old)
    assert (cfg.num_classes, cfg.init) == (0, "default")
    assert cfg.to_dict() == {**old, "num_classes": 0, "init": "default"}
