"""Weight initialisation (``--init``): ``default``, ``xavier`` or ``ortho``, applied after a network is built.

``default`` touches nothing: PyTorch's own initialisation as each layer made it (the dcgan model has
always been trained so, and its weights stay bit-identical). ``xavier``: Glorot-uniform weights and
zero biases on every convolution, linear layer and embedding, as the authors' TensorFlow code
(``xavier_initializer``, ``zeros_initializer``). ``ortho``: orthogonal weights (BigGAN's ``ortho``),
biases zero as well. BatchNorm and the conditional BatchNorm's gains (1) and biases (0) are not
initialisation choices and keep their values; so does attention's γ (0).

A spectrally normalised layer is initialised on its raw weight (``parametrizations.weight.original``),
and its power-iteration vectors u, v are then re-converged on the new weight (15 iterations, as
``spectral_norm`` does when it wraps a layer), so σ is right from the first step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from sagan_cli.models.config import INITS

_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def _raw_weight(m: nn.Module) -> torch.Tensor:
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original
    return m.weight


@torch.no_grad()
def apply_init(net: nn.Module, kind: str) -> nn.Module:
    """Initialise ``net``'s layers in place by ``kind`` (one of INITS); returns ``net``."""
    if kind not in INITS:
        raise ValueError(f"unknown init {kind!r}")
    if kind == "default":
        return net
    for m in net.modules():
        if not isinstance(m, _LAYERS):
            continue
        w = _raw_weight(m)
        if kind == "xavier":
            nn.init.xavier_uniform_(w)
        else:
            nn.init.orthogonal_(w)
        if getattr(m, "bias", None) is not None:
            m.bias.zero_()
        if parametrize.is_parametrized(m, "weight"):
            for p in m.parametrizations.weight:
                if hasattr(p, "_power_method") and w.ndim > 1:
                    p._power_method(p._reshape_weight_to_matrix(w), 15)
    return net
