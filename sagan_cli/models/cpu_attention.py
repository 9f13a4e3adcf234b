"""The explicit attention of a large feature map on the CPU, its products in oneDNN, one image at a time.

Same maths as ``softmax(qᵀk) · vᵀ`` in fp32; only where the products run differs.
PyTorch sends fp32 ``bmm``/``mm`` on the CPU to MKL, which on AMD processors takes its
AVX2 code path, while oneDNN (which PyTorch already uses for convolutions) runs AVX-512
there: on the 2-core AMD EPYC of docs/performance.md the products of G's 32×32 layer at
64 px (N = M = 1024) take half the time or less. oneDNN's fp32 matrix product is reached
through ``torch.ops.mkldnn._linear_pointwise`` (``x @ wᵀ``), the op PyTorch's own
compiler emits for linear layers on the CPU. It has no autograd formula, hence the
``autograd.Function`` here; its backward is the textbook one, with the softmax
backward's row sums Σ_m ∂β_nm·β_nm taken as Σ_c ∂o_nc·o_nc (the same number, without
another pass over the N×M matrix).

Used only where it pays and works: CPU, fp32, N·M ≥ ``MIN_ELEMENTS`` per image (smaller
maps would spend more in per-image Python than they save), not under ``torch.compile``,
and only after a one-time check that the op exists and agrees with ``@`` on a small
product. Anything else takes the batched ``bmm`` path in ``attention.py``.
"""

from __future__ import annotations

import torch

MIN_ELEMENTS = 256 * 1024  # per-image N·M from which this path is used (G's 32×32 layer: 1 M)
_checked: dict = {}


def _mm_t(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x @ wᵀ by oneDNN (x: n×k, w: m×k, both contiguous fp32)."""
    return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")


def available() -> bool:
    """Whether oneDNN's product can be used here (checked once per process)."""
    if "ok" not in _checked:
        try:
            g = torch.Generator().manual_seed(0)
            x, w = torch.randn(37, 19, generator=g), torch.randn(11, 19, generator=g)
            _checked["ok"] = bool(torch.backends.mkldnn.is_available()
                                  and torch.allclose(_mm_t(x, w), x @ w.t(), rtol=1e-5, atol=1e-5))
        except Exception:  # op missing or renamed in this torch build: use the bmm path
            _checked["ok"] = False
    return _checked["ok"]


def _compiling() -> bool:
    fn = getattr(torch.compiler, "is_compiling", None)
    return bool(fn and fn())


def wanted(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether ``attend`` should compute this attention (see the module docstring)."""
    return (q.device.type == "cpu" and q.dtype == k.dtype == v.dtype == torch.float32
            and q.shape[-1] * k.shape[-1] >= MIN_ELEMENTS and not _compiling() and available())


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """o = softmax(qᵀk, over keys) · vᵀ per image: q B×d×N, k B×d×M, v B×Cv×M → B×N×Cv."""
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return _Attention.apply(q, k, v)
    return _forward(q, k, v, keep=False)[0]


def _forward(q, k, v, keep: bool):
    out = q.new_empty(q.shape[0], q.shape[-1], v.shape[1])
    betas = []
    for i in range(q.shape[0]):
        beta = torch.softmax(_mm_t(q[i].t().contiguous(), k[i].t().contiguous()), dim=-1)  # N×M
        out[i] = _mm_t(beta, v[i].contiguous())  # N×Cv
        if keep:
            betas.append(beta)
    return out, betas


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):
        out, betas = _forward(q, k, v, keep=True)
        ctx.save_for_backward(q, k, v, out)
        ctx.betas = betas
        return out

    @staticmethod
    def backward(ctx, g_out):
        q, k, v, out = ctx.saved_tensors
        betas, ctx.betas = ctx.betas, None
        gq, gk, gv = q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)
        row = (g_out * out).sum(-1, keepdim=True)  # B×N×1: Σ_m ∂β_nm β_nm = Σ_c ∂o_nc o_nc
        for i in range(q.shape[0]):
            beta, betas[i] = betas[i], None
            g = g_out[i].contiguous()  # N×Cv
            gv[i] = (beta.t() @ g).t()  # Cv×M
            g_s = _mm_t(g, v[i].t().contiguous()).sub_(row[i]).mul_(beta)  # ∂s = β ⊙ (∂β − row), N×M
            gq[i] = _mm_t(g_s, k[i].contiguous()).t()  # (∂s · kᵀ)ᵀ: d×N
            gk[i] = q[i] @ g_s  # d×M
        return gq, gk, gv
