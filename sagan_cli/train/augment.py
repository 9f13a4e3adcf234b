"""Augmentation of D's inputs: ``--mirror`` (x-flips of the real images) and DiffAugment (``--diffaug``).

``--mirror`` (StyleGAN's name) flips each real image left-right with probability 1/2: data augmentation,
so it touches the real images only. DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training") applies the same kind of random, differentiable transform T to every
image D sees, real and fake, in the D step and in the G step, so D never sees an untransformed image
and G's gradient flows back through T. Its policies, one table entry each (the name → a function):

- ``color``: a random brightness shift in [-0.5, 0.5), then saturation (each pixel's distance from its
  channel mean times a factor in [0, 2)), then contrast (the distance from the image's mean times a
  factor in [0.5, 1.5)); on images in [-1, 1], unclamped;
- ``translation``: a random integer shift of up to 1/8 of the image size in each direction, zeros
  shifted in;
- ``cutout``: a square of half the image size, centred on a random pixel (the border may cut it), zeroed.

Each parameter is drawn per image. The draws come from two ``torch.Generator``s on the device, one
for the mirror and one for DiffAugment, seeded from the run's seed and the step: the global random
stream is untouched (a run without these options is the run it was before) and a resumed run draws
the augmentations the uninterrupted run drew. With several processes each draw is made for the
global batch and a rank takes its slice, as the noise is.

No torch import at module level: the command line checks and lists the names without loading torch.
"""

from __future__ import annotations

from typing import Callable

from sagan_cli.util.errors import SaganError

TRANSLATION_RATIO = 0.125  # the largest shift, as a fraction of the image size
CUTOUT_RATIO = 0.5  # the side of the cutout square, as a fraction of the image size


def brightness(x, rand):
    return x + (rand(1, 1, 1) - 0.5)


def saturation(x, rand):
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (rand(1, 1, 1) * 2.0) + mean


def contrast(x, rand):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand(1, 1, 1) + 0.5) + mean


def color(x, rand):
    return contrast(saturation(brightness(x, rand), rand), rand)


def _shifts(rand, most: int):
    """Integers uniform in [-most, most], one per image."""
    return (rand(1) * (2 * most + 1)).floor().long().clamp_(max=2 * most) - most  # clamp: a product just under 2·most+1 may round up to it


def translation(x, rand):
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    dy, dx = _shifts(rand, sy), _shifts(rand, sx)
    # Output pixel (i, j) is input pixel (i - dy, j - dx), read from the zero-padded image: distinct indices,
    # no clamping, so the backward pass scatters each gradient to one place.
    padded = F.pad(x, (sx, sx, sy, sy)).permute(0, 2, 3, 1)  # N, H+2sy, W+2sx, C
    rows = torch.arange(h, device=x.device) + sy - dy  # N, H
    cols = torch.arange(w, device=x.device) + sx - dx  # N, W
    picked = padded[torch.arange(n, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]  # N, H, W, C
    return picked.permute(0, 3, 1, 2)


def cutout(x, rand):
    import torch

    n, _, h, w = x.shape
    size_y, size_x = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    top = (rand(1) * h).floor().long().clamp_(max=h - 1) - size_y // 2  # N, 1: the square's first row (may be < 0)
    left = (rand(1) * w).floor().long().clamp_(max=w - 1) - size_x // 2
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + size_y)  # N, H
    in_cols = (cols >= left) & (cols < left + size_x)  # N, W
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


POLICIES: dict[str, Callable] = {
    "color": color,
    "translation": translation,
    "cutout": cutout,
}


def parse(text: str) -> tuple[str, ...]:
    """``--diffaug``'s comma-separated policy names, in the order they apply; an unknown one is an error."""
    names = tuple(p.strip() for p in (text or "").split(",") if p.strip())
    for name in names:
        if name not in POLICIES:
            raise SaganError(f"--diffaug policy {name!r} is not one of: {', '.join(POLICIES)}")
    return names


def mirror(x, rand):
    """Each image flipped left-right with probability 1/2."""
    import torch

    return torch.where(rand(1, 1, 1) < 0.5, x.flip(3), x)


def apply(x, fns, rand):
    for fn in fns:
        x = fn(x, rand)
    return x


class Augment:
    """The trainer's hook: ``d(real, fake, step)`` before D in a D step, ``g(fake, step)`` in the G step.

    Without ``--mirror`` and ``--diffaug`` both return their inputs themselves and draw nothing.
    """

    def __init__(self, tcfg, device, dist):
        self.policies = [POLICIES[name] for name in parse(tcfg.diffaug)]
        self.mirror = tcfg.mirror
        self.seed, self.device, self.dist = tcfg.seed, device, dist
        self._step, self._gens = None, None

    @property
    def active(self) -> bool:
        return self.mirror or bool(self.policies)

    def _rand(self, kind: int, step: int, n: int):
        """Uniform draws for this rank's ``n`` images from generator ``kind`` (0: mirror, 1: DiffAugment) of ``step``."""
        import torch

        if step != self._step:  # a step's D steps and its G step draw in turn from the step's generators
            self._gens = [torch.Generator(device=self.device).manual_seed(
                (self.seed * 0x9E3779B1 + step * 0x85EBCA77 + k * 0xC2B2AE3D + 0xA06) % 2**63) for k in (0, 1)]
            self._step = step
        gen, world = self._gens[kind], self.dist.world
        shard = self.dist.shard(n * world)
        return lambda *shape: torch.rand(n * world, *shape, generator=gen, device=self.device)[shard]

    def _finish(self, x):
        import torch

        return x.contiguous(memory_format=torch.channels_last)

    def d(self, real, fake, step: int):
        """Real (mirrored, then DiffAugment) and fake (DiffAugment) images as D's D step sees them."""
        if not self.active:
            return real, fake
        if self.mirror:
            real = mirror(real, self._rand(0, step, len(real)))
        if self.policies:
            real = apply(real, self.policies, self._rand(1, step, len(real)))
            fake = apply(fake, self.policies, self._rand(1, step, len(fake)))
        return self._finish(real), self._finish(fake)

    def g(self, fake, step: int):
        """G's images as D sees them in the G step (DiffAugment; the mirror is for real images only)."""
        if not self.policies:
            return fake
        return self._finish(apply(fake, self.policies, self._rand(1, step, len(fake))))
