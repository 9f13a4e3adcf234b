"""The fast paths of the models compute the same maths as the plain ones.

* attention through scaled_dot_product_attention(scale=1.0) = the explicit softmax form;
* the explicit form with its products in oneDNN (``cpu_attention``) = the same in bmm;
* the explicit form taken over the batch in slices (``chunk_bytes``) = the whole batch at once;
* channels_last tensors and weights = NCHW, for G and D, outputs and gradients;

No timing is asserted here: speed lives in benchmarks/ (docs/performance.md).
"""

from __future__ import annotations

import copy

import pytest
import torch

from sagan_cli.models.config import ModelConfig
from sagan_cli.models import attention_layers
from sagan_cli.models import cpu_attention
from sagan_cli.models.attention import SelfAttention
from sagan_cli.models.dcgan import Discriminator, Generator

CL = torch.channels_last


def _grads(module, x=None):
    """Gradients of the parameters (and of ``x``), the key biases checked apart.

    A key bias adds the same q_j·b to every logit of query j, which softmax ignores: its
    true gradient is exactly 0 and what backward returns is rounding noise of sums of
    large terms, so it is checked for being ~0 rather than compared between paths.
    """
    named = {n: p for n, p in module.named_parameters() if p.grad is not None}
    grads = [p.grad.detach().contiguous() for n, p in named.items() if not n.endswith("key.bias")]
    if x is not None:
        grads.append(x.grad.detach().contiguous())
    scale = max(float(g.abs().max()) for g in grads)
    for n, p in named.items():
        if n.endswith("key.bias"):
            assert float(p.grad.abs().max()) <= 1e-5 * scale, n
    return grads


def _run(block, x, impl=None, chunk_bytes=None):
    """Output and all gradients of sum(w * block(x)) for a fixed random w."""
    block = copy.deepcopy(block)
    if impl is not None:
        block.impl = impl
    if chunk_bytes is not None:
        block.chunk_bytes = chunk_bytes
    x = x.detach().clone().requires_grad_(True)
    y = block(x)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(5))
    (y * w).sum().backward()
    return y.detach(), _grads(block, x)


def _close(a, b, tol=1e-5):
    """Outputs equal to ``tol``; each gradient equal to ``tol`` times its largest entry.

    Gradients are sums over batch and positions, accumulated in a different order by each
    path, so they are compared at their own scale (plus 1e-6 absolute for tiny entries).
    """
    ya, ga = a
    yb, gb = b
    torch.testing.assert_close(ya, yb, rtol=tol, atol=tol)
    assert len(ga) == len(gb)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=0, atol=tol * float(x.abs().max()) + 1e-6)


def _attention(channels, form, gamma=0.7, seed=0):
    torch.manual_seed(seed)
    block = SelfAttention(channels, form)
    block.gamma.data.fill_(gamma)  # γ = 0 would hide the attention output
    return block


@pytest.mark.parametrize("form", ["paper", "official"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_sdpa_and_explicit_attention_agree_with_gradients(form, layout):
    # The 64-px model's shapes, scaled down in batch: G 32×32 (N = 1024) and D 4×4.
    for channels, size in ((64, 32), (64, 4)):
        block = _attention(channels, form)
        x = torch.randn(2, channels, size, size)
        if layout == "channels_last":
            x = x.contiguous(memory_format=CL)
            block = block.to(memory_format=CL)
        _close(_run(block, x, impl="sdpa"), _run(block, x, impl="explicit"))


@pytest.mark.parametrize("form", ["paper", "official"])
def test_onednn_attention_equals_the_bmm_path(form, monkeypatch):
    if not cpu_attention.available():
        pytest.skip("this torch build has no oneDNN linear op; the bmm path is used")
    block = _attention(64, form)
    x = torch.randn(3, 64, 32, 32)  # G's 32×32 layer: N·M at or above MIN_ELEMENTS
    n, m = 1024, (256 if form == "official" else 1024)
    assert n * m >= cpu_attention.MIN_ELEMENTS
    calls = []
    monkeypatch.setattr(cpu_attention, "attend", lambda *a, _f=cpu_attention.attend: calls.append(1) or _f(*a))
    onednn = _run(block, x, impl="explicit")
    assert calls, "the oneDNN path was not taken"
    monkeypatch.setattr(cpu_attention, "MIN_ELEMENTS", 1 << 40)
    _close(onednn, _run(block, x, impl="explicit"))


def test_onednn_attention_is_deterministic_and_no_grad_gives_the_same_output():
    # Resuming a run reproduces it bit for bit only if repeated calls agree exactly.
    if not cpu_attention.available():
        pytest.skip("this torch build has no oneDNN linear op")
    q, k, v = torch.randn(2, 8, 1024), torch.randn(2, 8, 1024), torch.randn(2, 64, 1024)
    g = torch.randn(2, 1024, 64)
    with torch.no_grad():
        plain = cpu_attention.attend(q, k, v)
    runs = []
    for _ in range(2):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = cpu_attention.attend(qq, kk, vv)
        assert out.grad_fn is not None
        out.backward(g)
        runs.append([out.detach(), qq.grad, kk.grad, vv.grad])
    assert torch.equal(plain, runs[0][0])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_onednn_attention_falls_back_when_the_op_is_missing(monkeypatch):
    def broken(*_args):
        raise RuntimeError("no such op")

    monkeypatch.setattr(cpu_attention, "_checked", {})
    monkeypatch.setattr(cpu_attention, "_mm_t", broken)
    assert not cpu_attention.available()
    block = _attention(64, "paper")
    x = torch.randn(2, 64, 32, 32)
    y = block(x)  # takes the bmm path instead
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_auto_attention_is_explicit_on_cpu():
    block = _attention(16, "paper")
    x = torch.randn(1, 16, 4, 4)
    assert block.impl == "auto" and not block.use_sdpa(x)
    block.impl = "sdpa"
    assert block.use_sdpa(x)


@pytest.mark.parametrize("form", ["paper", "official"])
def test_sliced_batch_equals_whole_batch(form):
    block = _attention(32, form)
    x = torch.randn(5, 32, 16, 16)
    n, m = 256, (64 if form == "official" else 256)
    whole = _run(block, x, impl="explicit", chunk_bytes=0)
    for images_per_slice in (1, 2, 3):  # 3 leaves an uneven last slice
        sliced = _run(block, x, impl="explicit", chunk_bytes=images_per_slice * n * m * 4)
        _close(whole, sliced, tol=1e-6)


def test_default_slices_cover_the_64px_generator_layer():
    block = SelfAttention(64)
    per_image = 1024 * 1024 * 4  # G's 32×32 layer: one N×N fp32 matrix per image
    assert 1 <= block.chunk_bytes // per_image < 64  # batch 64 is sliced


def test_attention_weights_are_whole_batch_and_match_the_sliced_output():
    block = _attention(32, "paper").eval()
    block.chunk_bytes = 256 * 256 * 4  # one image per slice
    x = torch.randn(3, 32, 16, 16)
    found: list = []
    with torch.no_grad():
        y_w = block(x, weights=found)
        y = block(x)
    assert found[0].shape == (3, 256, 256)
    torch.testing.assert_close(found[0].sum(-1), torch.ones(3, 256))
    torch.testing.assert_close(y, y_w, rtol=1e-6, atol=1e-6)


def _net_run(net, inp):
    """Output and gradients (see ``_grads``) of sum(w * net(inp))."""
    net = copy.deepcopy(net)
    inp = inp.detach().clone().requires_grad_(inp.is_floating_point() and inp.dim() == 4)
    out = net(inp)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    (out * w).sum().backward()
    return out.detach().contiguous(), _grads(net, inp if inp.requires_grad else None)


@pytest.mark.parametrize("imsize", [32, 64])
def test_channels_last_equals_nchw_for_g_and_d(imsize):
    torch.manual_seed(0)
    cfg = ModelConfig(imsize=imsize, z_dim=16, g_conv_dim=8, d_conv_dim=8)
    G, D = Generator(cfg), Discriminator(cfg)
    for m in attention_layers(G, D).values():
        m.gamma.data.fill_(0.5)
    z = torch.randn(4, cfg.z_dim)
    x = torch.rand(4, 3, imsize, imsize) * 2 - 1
    # Train mode: each copy runs the same one power iteration from the same u.
    _close(_net_run(G, z), _net_run(G.to(memory_format=CL), z))
    _close(_net_run(D, x), _net_run(copy.deepcopy(D).to(memory_format=CL), x.contiguous(memory_format=CL)))
