"""Class conditioning: conditional BatchNorm in G, the projection term in D (both architectures).

Conditional BatchNorm (de Vries et al. 2017; the authors' ``ops.ConditionalBatchNorm``): the feature
map is normalised by a BatchNorm without its own affine, then scaled and shifted by a gain and a bias
looked up per class: y = γ[c] · BN(x) + β[c], with γ initialised to 1 and β to 0, so at step 0 every
class sees the plain BatchNorm. The statistics (batch, running, standing) are shared by all classes.

Projection (Miyato & Koyama 2018; the authors' ``sn_embedding``): D's logit gets ⟨embed(c), φ(x)⟩,
with φ(x) the pooled feature vector that feeds its output layer and ``embed`` a spectrally normalised
class embedding of that width.

``y`` is a LongTensor of class ids, one per image; G also takes a float B×K tensor of class weights (each
row sums to 1), the mixture of those classes' gains and biases: ``sample --class A,B --interpolate`` walks
from one class to another at fixed z with it. A conditional network refuses to run without it and
an unconditional one refuses labels (``check_labels``); ids are not range-checked here (that would
read them back from the device on every forward): the commands check ``--class`` against the
checkpoint's classes.
"""

from __future__ import annotations

import torch
from torch import nn

from sagan_cli.models.spectral import spectral_norm
from sagan_cli.util.errors import SaganError


def check_labels(num_classes: int, y: torch.Tensor | None, batch: int, net: str) -> None:
    """The one check of a network's labels (no device sync: shape and dtype only)."""
    if num_classes == 0:
        if y is not None:
            raise SaganError(f"this {net} is unconditional and takes no class labels")
        return
    if y is None:
        raise SaganError(f"this {net} is class-conditional ({num_classes} classes): it needs a class label for every image")
    if net == "generator" and y.is_floating_point() and y.shape == (batch, num_classes):
        return  # class weights: a mixture of classes (conditional BatchNorm only)
    if y.dtype != torch.long or y.shape != (batch,):
        raise SaganError(f"{net} class labels must be a LongTensor of {batch} class ids, got {y.dtype} of shape {tuple(y.shape)}")


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d(affine=False) followed by a per-class gain (init 1) and bias (init 0)."""

    def __init__(self, num_features: int, num_classes: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)
        self.gain = nn.Parameter(torch.ones(num_classes, num_features))
        self.bias = nn.Parameter(torch.zeros(num_classes, num_features))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.is_floating_point():  # class weights B×K: the mixture of the classes' gains and biases
            gain, bias = (y.to(self.gain.dtype) @ self.gain)[:, :, None, None], (y.to(self.bias.dtype) @ self.bias)[:, :, None, None]
            return self.bn(x) * gain.to(x.dtype) + bias.to(x.dtype)
        # index_select, not indexing: its backward is one index_add, as an embedding's
        gain = self.gain.index_select(0, y)[:, :, None, None]
        bias = self.bias.index_select(0, y)[:, :, None, None]
        return self.bn(x) * gain.to(x.dtype) + bias.to(x.dtype)


def batch_norm(num_features: int, num_classes: int) -> nn.Module:
    """G's normalisation: plain BatchNorm2d when unconditional, ConditionalBatchNorm2d otherwise."""
    if num_classes == 0:
        return nn.BatchNorm2d(num_features)
    return ConditionalBatchNorm2d(num_features, num_classes)


def normalise(norm: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Apply either kind of ``batch_norm``: only the conditional one takes the labels."""
    return norm(x, y) if isinstance(norm, ConditionalBatchNorm2d) else norm(x)


class Projection(nn.Module):
    """The projection term ⟨embed(y), h⟩ of D: h B×C (pooled features) → B."""

    def __init__(self, num_classes: int, channels: int):
        super().__init__()
        self.embed = spectral_norm(nn.Embedding(num_classes, channels))

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.embed(y).to(h.dtype) * h).sum(1)
