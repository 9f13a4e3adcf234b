"""The SAGAN self-attention block, in the paper's form and the authors' released form.

Notation of the paper (Zhang et al. 2018, eq. 1-3): for feature map x with N
positions, s_ij = f(x_i)ᵀ g(x_j), β_{j,i} = softmax_i(s_ij) (no 1/√d scaling),
o_j = Σ_i β_{j,i} h(x_i), y = γ·o + x with γ a learned scalar that starts at 0.
Here g is ``query``, f is ``key``, h is ``value``; queries index rows of β.

``paper``    f, g: C→C/8, h: C→C, no pooling, no output conv (the reference port).
``official`` f, g: C→C/8, h: C→C/2, 2×2 max-pool on keys and values (N/4 keys),
             output 1×1 conv C/2→C (the authors' TF code; BigGAN, StudioGAN).

Two paths with the same maths: ``forward(x, weights=[])`` always uses an explicit
softmax and appends the B×N×M attention matrix (rows sum to 1); ``forward(x)`` uses
``scaled_dot_product_attention`` with ``scale=1.0`` or the explicit form, whichever is
faster on the input's device (``impl``, see ``use_sdpa``). Speed measurements:
docs/performance.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from sagan_cli.models.spectral import spectral_norm

from sagan_cli.models import cpu_attention
from sagan_cli.models.config import ATTENTION_FORMS


ATTN_CHUNK_BYTES = 8 << 20


def sn_conv1x1(cin: int, cout: int, bias: bool) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, kernel_size=1, bias=bias))


class SelfAttention(nn.Module):
    def __init__(self, channels: int, form: str = "paper"):
        super().__init__()
        if form not in ATTENTION_FORMS:
            raise ValueError(f"unknown attention form {form!r}")
        self.form = form
        self.channels = channels
        inner = max(channels // 8, 1)
        official = form == "official"
        value_ch = channels // 2 if official else channels
        self.query = sn_conv1x1(channels, inner, bias=not official)
        self.key = sn_conv1x1(channels, inner, bias=not official)
        self.value = sn_conv1x1(channels, value_ch, bias=not official)
        self.out = sn_conv1x1(value_ch, channels, bias=False) if official else None
        self.pool = official
        self.gamma = nn.Parameter(torch.zeros(()))
        # "auto" | "sdpa" | "explicit": how forward(x) computes attention when no weights are asked for.
        self.impl = "auto"
        # Explicit path without weights: the batch is processed in slices of about this many
        # bytes of attention matrix (0: the whole batch at once). See _explicit.
        self.chunk_bytes = ATTN_CHUNK_BYTES
        # Explicit path without weights on the CPU: large maps through oneDNN (cpu_attention).
        # False keeps them on the bmm path (benchmarks/train_bench.py measures the difference).
        self.onednn = True

    def key_grid(self, h: int, w: int) -> tuple[int, int]:
        """Shape of the key/value grid for an h×w input (pooled in the official form)."""
        return (h // 2, w // 2) if self.pool else (h, w)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """g(x), f(x), h(x) as one 1×1 convolution with the three spectrally normalised weights stacked.

        Each output channel is the same dot product as in three separate convolutions, and
        each weight is still normalised by its own σ (one power iteration per forward, as
        ``self.query(x)`` would do); one convolution of 2d + Cv output channels is faster
        than two skinny ones of d and one of Cv, forward and backward.
        """
        convs = (self.query, self.key, self.value)
        weight = torch.cat([m.weight for m in convs])
        bias = torch.cat([m.bias for m in convs]) if self.query.bias is not None else None
        return F.conv2d(x, weight, bias).split([m.out_channels for m in convs], dim=1)

    def use_sdpa(self, x: torch.Tensor) -> bool:
        """Whether ``forward(x)`` goes through ``scaled_dot_product_attention``.

        ``auto``: not on the CPU. There q/k (C/8 channels) and v (C or C/2) have different
        widths, which PyTorch's fused CPU kernel does not take, so SDPA falls back to its
        math path (bmm, a NaN-guarded softmax, bmm): the same work as the explicit form plus
        extra passes over the B×N×N matrix, measured slower (docs/performance.md).
        """
        if self.impl == "auto":
            return x.device.type != "cpu"
        return self.impl == "sdpa"

    def forward(self, x: torch.Tensor, weights: list | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.project(x)
        q = q.flatten(2)  # B×d×N
        if self.pool:
            k = F.max_pool2d(k, 2)
            v = F.max_pool2d(v, 2)
        k = k.flatten(2)  # B×d×M
        v = v.flatten(2)  # B×Cv×M
        if weights is None and self.use_sdpa(x):
            o = F.scaled_dot_product_attention(
                q.transpose(1, 2).unsqueeze(1), k.transpose(1, 2).unsqueeze(1), v.transpose(1, 2).unsqueeze(1), scale=1.0
            ).squeeze(1).transpose(1, 2)  # B×Cv×N
        else:
            o = self._explicit(q, k, v, weights)
        o = o.reshape(b, -1, h, w)  # a view for channels_last x; for NCHW a copy of o (not of β)
        if self.out is not None:
            o = self.out(o)
        return x + self.gamma * o

    def _explicit(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, weights: list | None):
        """β = softmax(qᵀk) row by row, o = Σ β v: B×d×N, B×d×M, B×Cv×M → B×Cv×N (a transposed view).

        o is computed as β·vᵀ (B×N×Cv), so every N×M matrix of the forward and the backward
        (β, its gradient, the softmax gradient) is produced and consumed row-major; the
        form v·βᵀ would make autograd transpose-copy the N×M gradient of β.

        Without ``weights``, on the CPU, large maps (G's 32×32 layer) go one image at a time
        through oneDNN's matrix product (``cpu_attention``: the same sums, about twice as fast
        where PyTorch's BLAS is MKL on an AMD processor); other maps are taken in slices of
        images whose N×M matrices together stay under ``chunk_bytes``: each image's attention
        is independent, so
        this is the same computation, but the slice's matrix is still in cache when the
        softmax and the second product read it, and the allocator reuses the freed slices
        instead of mapping fresh zeroed pages for a B×N×M block (256 MiB for G's 32×32 layer
        at batch 64) on every call.
        """
        if weights is None and self.onednn and cpu_attention.wanted(q, k, v):
            return cpu_attention.attend(q, k, v).transpose(1, 2)
        b, n, m = q.shape[0], q.shape[-1], k.shape[-1]
        step = b
        # Not on a GPU: its caching allocator already reuses memory, slices would only add kernel
        # launches (and unrolled copies under torch.compile), and training there uses SDPA.
        if weights is None and self.chunk_bytes > 0 and q.device.type == "cpu":
            step = max(1, min(b, self.chunk_bytes // (n * m * max(q.element_size(), 4))))
        outs = []
        # split, not indexing: the backward of a split is one cat, that of each slice a full-size zero tensor
        for qi, ki, vi in zip(q.split(step), k.split(step), v.split(step)):
            beta = torch.softmax(qi.transpose(1, 2) @ ki, dim=-1)  # N×M per image, rows sum to 1
            if weights is not None:
                weights.append(beta)
            outs.append(beta.to(vi.dtype) @ vi.transpose(1, 2))  # N×Cv per image
        o = outs[0] if len(outs) == 1 else torch.cat(outs)
        return o.transpose(1, 2)


def run_attention(block: SelfAttention, x: torch.Tensor, name: str, attn_weights: dict | None) -> torch.Tensor:
    """Apply ``block``; with a dict, take the explicit path and store its weights under ``name``."""
    if attn_weights is None:
        return block(x)
    found: list = []
    y = block(x, weights=found)
    attn_weights[name] = found[0]
    return y
