"""The naive baseline of ``train_bench.py``: SAGAN trained the way the widely used PyTorch port does it.

Written for the benchmark only (``shared/reference/001_*.txt`` lists that port's 64-px model):

* its own power-iteration spectral-norm wrapper: ``u``/``v`` buffers, one iteration per
  forward, the weight recomputed as ``w_bar / sigma`` at every call;
* explicit attention in the paper's form: ``bmm`` → ``softmax`` → ``bmm``, ``y = γ·o + x``;
* eager fp32, NCHW;
* the D step generates the fakes WITH gradients and the D loss's backward runs through G
  as well (the port never detaches); D is called separately on real and on fake images;
* the G step leaves D's parameters trainable, so D's weight gradients are computed too.

The architecture and widths are ``sagan``'s default for the given ``ModelConfig``
(spectral norm on every conv, attention convs and G's RGB layer included; no bias in G's
convs that feed BatchNorm), so both arms compute the same networks and the FLOPs of
one forward match — ``train_bench.py`` checks parameter counts and forward FLOPs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sagan_cli.models.config import ModelConfig, d_resolutions, g_resolutions, width


def l2normalize(v: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return v / (v.norm() + eps)


class SpectralNorm(nn.Module):
    """The port's wrapper: ``w = w_bar / σ(w_bar)`` with σ from one power iteration per call."""

    def __init__(self, module: nn.Module, dim: int = 0):
        super().__init__()
        self.module, self.dim = module, dim
        w = module.weight
        mat = self._mat(w.data)
        self.register_buffer("u", l2normalize(w.data.new_empty(mat.shape[0]).normal_(0, 1)))
        self.register_buffer("v", l2normalize(w.data.new_empty(mat.shape[1]).normal_(0, 1)))
        self.weight_bar = nn.Parameter(w.data.clone())
        del module._parameters["weight"]

    def _mat(self, w: torch.Tensor) -> torch.Tensor:
        if self.dim != 0:
            w = w.transpose(0, self.dim)
        return w.reshape(w.shape[0], -1)

    def forward(self, *args):
        w = self.weight_bar
        mat = self._mat(w.data)
        if self.training:  # new tensors, not in-place: the previous call's graph saved the old u, v
            self.v = l2normalize(mat.t().mv(self.u))
            self.u = l2normalize(mat.mv(self.v))
        sigma = self.u.dot(self._mat(w).mv(self.v))
        self.module.weight = w / sigma
        return self.module(*args)


def sn(module: nn.Module) -> SpectralNorm:
    return SpectralNorm(module, dim=1 if isinstance(module, nn.ConvTranspose2d) else 0)


class SelfAttn(nn.Module):
    """The port's Self_Attn: B×N×N energy, softmax, bmm with the values, γ·out + x."""

    def __init__(self, c: int):
        super().__init__()
        self.query_conv = sn(nn.Conv2d(c, max(c // 8, 1), 1))
        self.key_conv = sn(nn.Conv2d(c, max(c // 8, 1), 1))
        self.value_conv = sn(nn.Conv2d(c, c, 1))
        self.gamma = nn.Parameter(torch.zeros(1))
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        b, c, w, h = x.size()
        proj_query = self.query_conv(x).view(b, -1, w * h).permute(0, 2, 1)  # B×N×d
        proj_key = self.key_conv(x).view(b, -1, w * h)  # B×d×N
        energy = torch.bmm(proj_query, proj_key)  # B×N×N
        attention = self.softmax(energy)
        proj_value = self.value_conv(x).view(b, -1, w * h)  # B×C×N
        out = torch.bmm(proj_value, attention.permute(0, 2, 1)).view(b, c, w, h)
        return self.gamma * out + x


class NaiveGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.res = g_resolutions(cfg.imsize)
        self.layers = nn.ModuleList()
        cin = cfg.z_dim
        for i, r in enumerate(self.res):
            cout = width(cfg.g_conv_dim, cfg.imsize, r)
            conv = nn.ConvTranspose2d(cin, cout, 4, 1, 0, bias=False) if i == 0 else nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)
            self.layers.append(nn.Sequential(sn(conv), nn.BatchNorm2d(cout), nn.ReLU()))
            if r in cfg.g_attn:
                self.layers.append(SelfAttn(cout))
            cin = cout
        self.last = nn.Sequential(sn(nn.ConvTranspose2d(cin, 3, 4, 2, 1)), nn.Tanh())

    def forward(self, z):
        x = z.view(z.size(0), -1, 1, 1)
        for layer in self.layers:
            x = layer(x)
        return self.last(x)


class NaiveDiscriminator(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList()
        cin = 3
        for r in d_resolutions(cfg.imsize):
            cout = width(cfg.d_conv_dim, cfg.imsize, r)
            self.layers.append(nn.Sequential(sn(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.1)))
            if r in cfg.d_attn:
                self.layers.append(SelfAttn(cout))
            cin = cout
        self.last = sn(nn.Conv2d(cin, 1, 4))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.last(x).squeeze()


class NaiveTrainer:
    """One D step then one G step, as the port's ``train()`` loop body does them."""

    def __init__(self, cfg: ModelConfig, device: torch.device, lr_g=1e-4, lr_d=4e-4, betas=(0.0, 0.9), seed=0):
        if cfg.attention != "paper":
            raise ValueError("the naive baseline implements the paper form of attention only")
        torch.manual_seed(seed)
        self.cfg, self.device = cfg, device
        self.G = NaiveGenerator(cfg).to(device)
        self.D = NaiveDiscriminator(cfg).to(device)
        self.g_optimizer = torch.optim.Adam(self.G.parameters(), lr_g, betas)
        self.d_optimizer = torch.optim.Adam(self.D.parameters(), lr_d, betas)

    def reset_grad(self):
        self.d_optimizer.zero_grad()
        self.g_optimizer.zero_grad()

    def train_step(self, real_u8: torch.Tensor) -> None:
        real_images = real_u8.to(self.device).float() / 127.5 - 1.0
        b = real_images.size(0)
        # D step: the fakes keep their graph, so d_loss.backward() also runs G's backward.
        d_out_real = self.D(real_images)
        d_loss_real = F.relu(1.0 - d_out_real).mean()
        z = torch.randn(b, self.cfg.z_dim, device=self.device)
        fake_images = self.G(z)
        d_out_fake = self.D(fake_images)
        d_loss_fake = F.relu(1.0 + d_out_fake).mean()
        d_loss = d_loss_real + d_loss_fake
        self.reset_grad()
        d_loss.backward()
        self.d_optimizer.step()
        # G step: D is not frozen, so its weight gradients are computed (and then discarded).
        z = torch.randn(b, self.cfg.z_dim, device=self.device)
        fake_images = self.G(z)
        g_out_fake = self.D(fake_images)
        g_loss_fake = -g_out_fake.mean()
        self.reset_grad()
        g_loss_fake.backward()
        self.g_optimizer.step()
