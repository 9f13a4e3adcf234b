"""Spectral normalisation whose power iteration and σ stay in fp32 under autocast.

``torch.nn.utils.parametrizations.spectral_norm`` computes W / σ(W) with ``torch.mv`` and ``vdot``;
under CUDA autocast ``mv`` runs in bf16/fp16, so σ (which scales every weight of the layer) and the
power-iteration vectors u, v would carry ~3 significant digits and drift from step to step. Here the
parametrisation is torch's own, run with autocast disabled on fp32 weights: the same maths, the same
state-dict keys (``parametrizations.weight.original``, ``…weight.0._u``, ``…_v``), the same random
initial u and v, so checkpoints from before load unchanged. Autocast still runs the layer's
convolution in bf16; only W / σ is computed in fp32.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class SpectralNormFP32(_SpectralNorm):
    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=weight.device.type, enabled=False):
            return super().forward(weight.float()).to(weight.dtype)


def spectral_norm(module: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12) -> nn.Module:
    """``module`` with its ``weight`` spectrally normalised (one power iteration per training forward, as
    torch's default); transposed convolutions normalise over their output dimension, as torch does."""
    dim = 1 if isinstance(module, _TRANSPOSED) else 0
    parametrize.register_parametrization(module, "weight", SpectralNormFP32(module.weight, n_power_iterations, dim, eps))
    return module
