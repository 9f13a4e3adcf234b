"""SAGAN networks: one table of architectures and the factory that reads it.

``ARCHITECTURES`` maps the name ``--arch`` takes (stored in ``ModelConfig.arch``) to a builder
``cfg -> (G, D)``, given as the builder itself or as ``"module:function"`` (imported on first use,
so listing the names costs no torch import). What a builder returns, every command relies on:

* ``G(z, y=None, attn_weights=None)``: B×z_dim → B×3×S×S in [-1, 1]; ``D(x, y=None, attn_weights=None)``:
  → B logits; ``y`` (a LongTensor of B class ids) is passed only when ``cfg.num_classes > 0``, and a
  conditional network refuses to run without it (an unconditional builder may leave ``y`` out);
  with a dict as ``attn_weights`` (always by keyword), each attention layer stores its B×N×M weights
  under its name;
* ``G.attn`` / ``D.attn``: ``nn.ModuleDict`` of the ``SelfAttention`` blocks keyed by the feature-map
  resolution (``"16"``), which name the layers ``g16``, ``d8`` (``layer_name``).

``build`` applies ``cfg.init`` (models/weight_init.py) to what the builder returns, so every
architecture takes ``--init``. Adding an architecture is one module with a ``build`` and one entry here
(docs/architecture.md).
"""

from __future__ import annotations

import importlib
from typing import Callable

ARCHITECTURES: dict[str, str | Callable] = {
    "dcgan": "sagan_cli.models.dcgan:build",
    "resnet": "sagan_cli.models.resnet:build",
}


def build(cfg):
    """(G, D) for a ModelConfig, by ``cfg.arch``."""
    entry = ARCHITECTURES[cfg.arch]
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
    G, D = entry(cfg)
    if getattr(cfg, "init", "default") != "default":
        from sagan_cli.models.weight_init import apply_init

        apply_init(G, cfg.init)
        apply_init(D, cfg.init)
    return G, D


def layer_name(net: str, res: int | str) -> str:
    """The name of an attention layer: ``g16`` is G's layer on its 16×16 feature map."""
    return f"{net}{res}"


def layer_names(g_attn, d_attn) -> list[str]:
    """Attention layer names in drawing order: G from coarse to fine, then D in its own order (fine to coarse)."""
    return [layer_name("g", r) for r in sorted(g_attn)] + [layer_name("d", r) for r in sorted(d_attn, reverse=True)]


def attention_layers(G, D=None) -> dict:
    """Every attention block by name: g16, g32, d8, d4 ... (G's alone without D)."""
    layers = {layer_name("g", k): m for k, m in G.attn.items()}
    if D is not None:
        layers.update({layer_name("d", k): m for k, m in D.attn.items()})
    return layers


def gammas(G, D) -> dict:
    return {f"gamma/{name}": m.gamma for name, m in attention_layers(G, D).items()}
