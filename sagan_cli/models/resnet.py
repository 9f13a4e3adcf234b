"""The `resnet` architecture: the authors' released SAGAN (brain-research/self-attention-gan), docs/model.md.

G: SN linear z → 4×4, up-blocks (BN, ReLU, nearest ×2, 3×3 conv, BN, ReLU, 3×3 conv, plus a 1×1 conv
shortcut of the upsampled input), BatchNorm, ReLU, 3×3 conv → RGB, tanh. The block BatchNorms are
conditional when ``cfg.num_classes`` > 0; the last one never is, as in their code.
D: an "optimized" first block (conv, ReLU, conv, 2×2 average pool; shortcut: pool then 1×1 conv),
down-blocks (ReLU, conv, ReLU, conv, pool; shortcut: 1×1 conv then pool) to 4×4, one more block at 4×4
without pooling, ReLU, global sum pooling, SN linear → one logit, plus the projection term when conditional.
Every conv and linear layer is spectrally normalised (models/spectral.py). Attention (models/attention.py)
goes after the block whose output has the listed resolution: G ``4`` is the linear layer's 4×4 map.

Widths: G on its r×r map ``resnet_g_width`` (16, 16, 8, 4, 2, 1 × g_conv_dim at 4² ... 128² for 128 px),
D ``width`` (1, 2, 4, 8, 16 × d_conv_dim at 64² ... 4²): at 128 px exactly the authors' networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sagan_cli.models import layer_name
from sagan_cli.models.attention import SelfAttention, run_attention
from sagan_cli.models.conditioning import Projection, batch_norm, check_labels, normalise
from sagan_cli.models.config import ModelConfig, d_resolutions, g_resolutions, resnet_g_width, width
from sagan_cli.models.spectral import spectral_norm


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, 1, k // 2, bias=bias))


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GBlock(nn.Module):
    """(C)BN, ReLU, nearest ×2, 3×3 conv, (C)BN, ReLU, 3×3 conv; shortcut: 1×1 conv of the upsampled input."""

    def __init__(self, cin: int, cout: int, num_classes: int):
        super().__init__()
        self.bn1 = batch_norm(cin, num_classes)
        # No bias: it feeds a BatchNorm, which subtracts it again (as dcgan's transposed convolutions).
        self.conv1 = _conv(cin, cout, 3, bias=False)
        self.bn2 = batch_norm(cout, num_classes)
        self.conv2 = _conv(cout, cout, 3)
        self.shortcut = _conv(cin, cout, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(_up(F.relu(normalise(self.bn1, x, y))))
        h = self.conv2(F.relu(normalise(self.bn2, h, y)))
        # A 1×1 convolution commutes with nearest upsampling: the same values, on a quarter of the pixels.
        return h + _up(self.shortcut(x))


class DBlock(nn.Module):
    """ReLU, 3×3 conv, ReLU, 3×3 conv, [2×2 average pool]; shortcut: 1×1 conv, [pool] (identity if
    neither the size nor the width changes). ``first``: the optimized block, no leading ReLU (its input
    is the image) and the shortcut pooled before its conv."""

    def __init__(self, cin: int, cout: int, downsample: bool = True, first: bool = False):
        super().__init__()
        self.first = first
        self.downsample = downsample
        self.conv1 = _conv(cin, cout, 3)
        self.conv2 = _conv(cout, cout, 3)
        self.shortcut = _conv(cin, cout, 1) if (downsample or cin != cout) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.first:
            s = self.shortcut(F.avg_pool2d(x, 2))
        elif self.shortcut is not None:
            s = self.shortcut(x)
            if self.downsample:
                s = F.avg_pool2d(s, 2)
        return h + s


class Generator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.resolutions = g_resolutions(cfg.imsize) + [cfg.imsize]  # 4 (the linear layer's map), 8, ..., imsize
        widths = [resnet_g_width(cfg.g_conv_dim, cfg.imsize, r) for r in self.resolutions]
        self.linear = spectral_norm(nn.Linear(cfg.z_dim, widths[0] * 16))
        self.blocks = nn.ModuleList(GBlock(cin, cout, cfg.num_classes) for cin, cout in zip(widths, widths[1:]))
        self.attn = nn.ModuleDict(
            {str(r): SelfAttention(c, cfg.attention) for r, c in zip(self.resolutions, widths) if r in cfg.g_attn}
        )
        self.bn = nn.BatchNorm2d(widths[-1])
        self.to_rgb = _conv(widths[-1], 3, 3)

    def _attend(self, x, r, attn_weights):
        if str(r) in self.attn:
            x = run_attention(self.attn[str(r)], x, layer_name("g", r), attn_weights)
        return x

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, attn_weights: dict | None = None) -> torch.Tensor:
        """z: B×z_dim (and y: B class ids when conditional) → B×3×S×S in [-1, 1].
        Pass a dict as ``attn_weights`` to collect each layer's attention matrix."""
        check_labels(self.cfg.num_classes, y, z.shape[0], "generator")
        x = self.linear(z).view(z.shape[0], -1, 4, 4)
        x = self._attend(x, 4, attn_weights)
        for block, r in zip(self.blocks, self.resolutions[1:]):
            x = self._attend(block(x, y), r, attn_weights)
        return torch.tanh(self.to_rgb(F.relu(self.bn(x))))


class Discriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.resolutions = d_resolutions(cfg.imsize)  # imsize/2, ..., 4: the outputs of the pooling blocks
        widths = [width(cfg.d_conv_dim, cfg.imsize, r) for r in self.resolutions]
        self.blocks = nn.ModuleList(
            DBlock(cin, cout, first=i == 0) for i, (cin, cout) in enumerate(zip([3] + widths, widths))
        )
        self.attn = nn.ModuleDict(
            {str(r): SelfAttention(c, cfg.attention) for r, c in zip(self.resolutions, widths) if r in cfg.d_attn}
        )
        self.last_block = DBlock(widths[-1], widths[-1], downsample=False)
        self.linear = spectral_norm(nn.Linear(widths[-1], 1))
        if cfg.num_classes:
            self.projection = Projection(cfg.num_classes, widths[-1])

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, attn_weights: dict | None = None) -> torch.Tensor:
        """x: B×3×S×S in [-1, 1] (and y: B class ids when conditional) → B logits.
        Pass a dict as ``attn_weights`` to collect each layer's attention matrix."""
        check_labels(self.cfg.num_classes, y, x.shape[0], "discriminator")
        for block, r in zip(self.blocks, self.resolutions):
            x = block(x)
            if str(r) in self.attn:
                x = run_attention(self.attn[str(r)], x, layer_name("d", r), attn_weights)
        h = F.relu(self.last_block(x)).sum((2, 3))  # global sum pooling: B×C
        out = self.linear(h).view(x.shape[0])
        if y is not None:
            out = out + self.projection(h, y)
        return out


def build(cfg: ModelConfig) -> tuple[Generator, Discriminator]:
    return Generator(cfg), Discriminator(cfg)
