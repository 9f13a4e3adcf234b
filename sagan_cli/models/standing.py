"""Standing statistics: G's BatchNorm statistics re-estimated for the weights it has now.

In eval mode a BatchNorm layer normalises with its running mean and variance. For the EMA generator
those buffers are an average of the raw generator's statistics over training, which are not the
statistics the averaged weights produce; BigGAN (``accumulate_standing_stats``) and StudioGAN
(``apply_standing_statistics``) therefore recompute them before sampling. Here: every BatchNorm's
statistics are reset and accumulated as a plain average over ``forwards`` no-grad passes of
``batch`` latents drawn from a fixed seed, with only the BatchNorm layers in train mode (spectral
norm's power-iteration vectors and everything else stay as they are), then G is back in eval mode.
The global RNG is not touched, so the result depends only on the weights, the batch and the seed.
A class-conditional G gets class ids drawn uniformly from the same seeded generator with each batch
(the statistics are shared by all classes; only the gains and biases are per class).
"""

from __future__ import annotations

import torch
from torch import nn

FORWARDS = 16  # BigGAN's default number of standing accumulations
SEED = 0x57A4D  # the latents' seed: fixed, so two runs on one checkpoint give the same images
DEFAULT_BATCH = 64  # when a checkpoint does not record its training batch


def batch_norms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def apply_standing_stats(G: nn.Module, z_dim: int, batch: int, forwards: int = FORWARDS, seed: int = SEED) -> nn.Module:
    """Re-estimate G's BatchNorm running statistics in place (see the module docstring); returns G in eval mode."""
    if batch < 2:
        raise ValueError("standing statistics need a batch of at least 2 latents")
    bns = batch_norms(G)
    G.eval()
    if not bns:
        return G
    momenta = [m.momentum for m in bns]
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the passes, not an exponential one
            m.train()
            # torch's own per-process BatchNorm, also for subclasses such as the trainer's SyncBatchNorm2d,
            # whose train mode would wait for ranks that are not drawing samples
            m.forward = nn.modules.batchnorm._BatchNorm.forward.__get__(m)
        num_classes = getattr(getattr(G, "cfg", None), "num_classes", 0)
        for _ in range(forwards):
            z = torch.randn(batch, z_dim, generator=gen).to(device)
            if num_classes:
                G(z, torch.randint(num_classes, (batch,), generator=gen).to(device))
            else:
                G(z)
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
            m.eval()
            m.__dict__.pop("forward", None)
    return G


def training_batch(state: dict) -> int:
    """The batch a checkpoint was trained with (the size its BatchNorm statistics were taken at)."""
    batch = (state.get("train_config") or {}).get("batch")
    return batch if isinstance(batch, int) and batch >= 2 else DEFAULT_BATCH
