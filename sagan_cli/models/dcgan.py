"""The `dcgan` architecture: the best-known PyTorch port's SAGAN (docs/model.md).

G: z → transposed-conv stack 4×4 → imsize, BatchNorm + ReLU, attention by resolution, tanh.
D: conv stack imsize → 4×4, LeakyReLU(0.1), attention by resolution, one logit.
With ``cfg.num_classes`` > 0, G's BatchNorms are conditional and D adds the projection term on its
sum-pooled 4×4 features (models/conditioning.py); with 0 the networks are exactly the port's.
"""

from __future__ import annotations

import torch
from torch import nn
from sagan_cli.models.spectral import spectral_norm

from sagan_cli.models.config import ModelConfig, d_resolutions, g_resolutions, width
from sagan_cli.models import layer_name
from sagan_cli.models.attention import SelfAttention, run_attention
from sagan_cli.models.conditioning import Projection, batch_norm, check_labels, normalise


def _up_block(cin: int, cout: int, first: bool, num_classes: int) -> nn.Sequential:
    # No bias: BatchNorm subtracts the batch mean, so a bias here has no effect on the
    # output and a zero true gradient (Adam would only random-walk it on rounding noise).
    conv = nn.ConvTranspose2d(cin, cout, 4, 1, 0, bias=False) if first else nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
    return nn.Sequential(spectral_norm(conv), batch_norm(cout, num_classes), nn.ReLU(inplace=True))


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.resolutions = g_resolutions(cfg.imsize)
        self.blocks = nn.ModuleList()
        self.attn = nn.ModuleDict()
        cin = cfg.z_dim
        for i, r in enumerate(self.resolutions):
            cout = width(cfg.g_conv_dim, cfg.imsize, r)
            self.blocks.append(_up_block(cin, cout, first=i == 0, num_classes=cfg.num_classes))
            if r in cfg.g_attn:
                self.attn[str(r)] = SelfAttention(cout, cfg.attention)
            cin = cout
        self.to_rgb = spectral_norm(nn.ConvTranspose2d(cin, 3, 4, 2, 1))

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, attn_weights: dict | None = None) -> torch.Tensor:
        """z: B×z_dim (and y: B class ids when conditional) → B×3×S×S in [-1, 1].
        Pass a dict as ``attn_weights`` to collect each layer's attention matrix."""
        check_labels(self.cfg.num_classes, y, z.shape[0], "generator")
        x = z.view(z.shape[0], -1, 1, 1)
        for block, r in zip(self.blocks, self.resolutions):
            if y is None:
                x = block(x)
            else:
                conv, norm, act = block
                x = act(normalise(norm, conv(x), y))
            if str(r) in self.attn:
                x = run_attention(self.attn[str(r)], x, layer_name("g", r), attn_weights)
        return torch.tanh(self.to_rgb(x))


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
        if cfg.num_classes:
            self.projection = Projection(cfg.num_classes, cin)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, attn_weights: dict | None = None) -> torch.Tensor:
        """x: B×3×S×S in [-1, 1] (and y: B class ids when conditional) → B logits.
        Pass a dict as ``attn_weights`` to collect each layer's attention matrix."""
        check_labels(self.cfg.num_classes, y, x.shape[0], "discriminator")
        for block, r in zip(self.blocks, self.resolutions):
            x = block(x)
            if str(r) in self.attn:
                x = run_attention(self.attn[str(r)], x, layer_name("d", r), attn_weights)
        out = self.last(x).view(x.shape[0])
        if y is not None:
            out = out + self.projection(x.sum((2, 3)), y)
        return out


def build(cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    return Generator(cfg), Discriminator(cfg)
