"""The SAGAN self-attention block, in the paper's form and the authors' released form.

Notation of the paper (Zhang et al. 2018, eq. 1-3): for feature map x with N
positions, s_ij = f(x_i)ᵀ g(x_j), β_{j,i} = softmax_i(s_ij) (no 1/√d scaling),
o_j = Σ_i β_{j,i} h(x_i), y = γ·o + x with γ a learned scalar that starts at 0.
Here g is ``query``, f is ``key``, h is ``value``; queries index rows of β.

``paper``    f, g: C→C/8, h: C→C, no pooling, no output conv (the reference port).
``official`` f, g: C→C/8, h: C→C/2, 2×2 max-pool on keys and values (N/4 keys),
             output 1×1 conv C/2→C (the authors' TF code; BigGAN, StudioGAN).

Two paths with the same maths: ``forward(x)`` uses the fused
``scaled_dot_product_attention`` kernel with ``scale=1.0``; ``forward(x, weights=[])``
uses an explicit softmax and appends the B×N×M attention matrix (rows sum to 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def sn_conv1x1(cin: int, cout: int, bias: bool) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, kernel_size=1, bias=bias))


class SelfAttention(nn.Module):
    def __init__(self, channels: int, form: str = "paper"):
        super().__init__()
        if form not in ("paper", "official"):
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
        self.fused = True  # use scaled_dot_product_attention when no weights are asked for

    def key_grid(self, h: int, w: int) -> tuple[int, int]:
        """Shape of the key/value grid for an h×w input (pooled in the official form)."""
        return (h // 2, w // 2) if self.pool else (h, w)

    def forward(self, x: torch.Tensor, weights: list | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # B×N×d
        k = self.key(x)
        v = self.value(x)
        if self.pool:
            k = F.max_pool2d(k, 2)
            v = F.max_pool2d(v, 2)
        k = k.flatten(2).transpose(1, 2)  # B×M×d
        v = v.flatten(2).transpose(1, 2)  # B×M×Cv
        if weights is None and self.fused:
            o = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), scale=1.0).squeeze(1)
        else:
            beta = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # B×N×M, rows sum to 1
            if weights is not None:
                weights.append(beta)
            o = beta.to(v.dtype) @ v
        o = o.transpose(1, 2).reshape(b, -1, h, w)
        if self.out is not None:
            o = self.out(o)
        return x + self.gamma * o


def run_attention(block: SelfAttention, x: torch.Tensor, name: str, attn_weights: dict | None) -> torch.Tensor:
    """Apply ``block``; with a dict, take the explicit path and store its weights under ``name``."""
    if attn_weights is None:
        return block(x)
    found: list = []
    y = block(x, weights=found)
    attn_weights[name] = found[0]
    return y
