"""Exponential moving average of G's weights, with a start delay.

Before ``start`` steps the copy simply tracks G. After it, parameters and BatchNorm
running statistics are averaged; spectral-norm power-iteration vectors (u, v) and
counters are copied from G, since they are directions for G's current weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float, start: int):
        self.decay, self.start = decay, start
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._bind(model)

    def _bind(self, model: nn.Module) -> None:
        src_p = dict(model.named_parameters())
        self._pairs_p = [(p, src_p[n]) for n, p in self.model.named_parameters()]
        src_b = dict(model.named_buffers())
        self._avg_b, self._copy_b = [], []
        for name, b in self.model.named_buffers():
            target = self._avg_b if ("running_" in name and b.is_floating_point()) else self._copy_b
            target.append((b, src_b[name]))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Call after optimiser step number ``step`` (1-based)."""
        if step <= self.start:
            for dst, src in self._pairs_p + self._avg_b + self._copy_b:
                dst.copy_(src)
            return
        w = 1.0 - self.decay
        torch._foreach_lerp_([d for d, _ in self._pairs_p], [s.detach() for _, s in self._pairs_p], w)
        if self._avg_b:
            torch._foreach_lerp_([d for d, _ in self._avg_b], [s for _, s in self._avg_b], w)
        for dst, src in self._copy_b:
            dst.copy_(src)
