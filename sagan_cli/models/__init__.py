"""SAGAN networks built from a ModelConfig."""

from sagan_cli.models.attention import SelfAttention
from sagan_cli.models.discriminator import Discriminator
from sagan_cli.models.generator import Generator

__all__ = ["Discriminator", "Generator", "SelfAttention", "attention_layers", "gammas"]


def attention_layers(G, D) -> dict:
    """Every attention block by name: g16, g32, d8, d4 ..."""
    layers = {f"g{k}": m for k, m in G.attn.items()}
    layers.update({f"d{k}": m for k, m in D.attn.items()})
    return layers


def gammas(G, D) -> dict:
    return {f"gamma/{name}": m.gamma for name, m in attention_layers(G, D).items()}
