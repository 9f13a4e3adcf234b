"""SAGAN discriminator: conv stack imsize → 4×4, LeakyReLU(0.1), attention by resolution, one logit."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from sagan_cli.config import ModelConfig, d_resolutions, width
from sagan_cli.models.attention import SelfAttention, run_attention


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.resolutions = d_resolutions(cfg.imsize)
        self.blocks = nn.ModuleList()
        self.attn = nn.ModuleDict()
        cin = 3
        for r in self.resolutions:
            cout = width(cfg.d_conv_dim, cfg.imsize, r)
            self.blocks.append(nn.Sequential(spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.1, inplace=True)))
            if r in cfg.d_attn:
                self.attn[str(r)] = SelfAttention(cout, cfg.attention)
            cin = cout
        self.last = spectral_norm(nn.Conv2d(cin, 1, 4, 1, 0))

    def forward(self, x: torch.Tensor, attn_weights: dict | None = None) -> torch.Tensor:
        """x: B×3×S×S in [-1, 1] → B logits. Pass a dict to collect each layer's attention matrix."""
        for block, r in zip(self.blocks, self.resolutions):
            x = block(x)
            if str(r) in self.attn:
                x = run_attention(self.attn[str(r)], x, f"d{r}", attn_weights)
        return self.last(x).view(x.shape[0])
