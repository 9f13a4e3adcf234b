"""Model configuration and the layout helpers of the resolution pyramid.

ModelConfig round-trips through a plain dict (checkpoints store it, so ``torch.load(weights_only=True)``
opens them). ``arch`` names an entry of ``sagan_cli.models.ARCHITECTURES``; a checkpoint written
before the field existed is a ``dcgan`` one, and one written before ``num_classes`` and ``init``
existed is unconditional with PyTorch's default initialisation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sagan_cli.util.errors import SaganError
from sagan_cli.util.images import check_imsize  # the sizes (IMSIZES) are shared with `prepare`

ATTENTION_FORMS = ("paper", "official")
INITS = ("default", "xavier", "ortho")  # models/weight_init.py

# Attention placement by feature-map resolution, one entry per size of util.images.IMSIZES.
# 64 px is the reference port's (G after the 16² and 32² blocks, D after the 8² and 4² blocks);
# the others keep G's layers at imsize/4 and imsize/2 (capped at 64², where N×N attention gets
# expensive) and D's at the two coarsest resolutions that carry enough context (imsize/8 and
# imsize/16 from 128 px up, which at 512 px is D's 64² map, as large as G's largest).
DEFAULT_ATTN = {
    32: ((8, 16), (8, 4)),
    64: ((16, 32), (8, 4)),
    128: ((32, 64), (16, 8)),
    256: ((32, 64), (32, 16)),
    512: ((32, 64), (64, 32)),
}

# The `resnet` architecture (the authors' released model): the sizes it is built for, and its attention
# by default where their code puts it at 128 px: one layer in G on the 32x32 map (after the third
# up-block) and one in D on the 32x32 map (after the second down-block), i.e. at imsize/4 in both.
RESNET_IMSIZES = (32, 64, 128, 256)
RESNET_DEFAULT_ATTN = {s: ((s // 4,), (s // 4,)) for s in RESNET_IMSIZES}
# The attention form each architecture gets when --attention is not given.
DEFAULT_FORM = {"resnet": "official"}

# Channel width at resolution r is conv_dim * imsize / (2r), capped at conv_dim * MAX_MULT,
# which reproduces the reference 64-px widths (G: 512-256-128-64, D: 64-128-256-512).
MAX_MULT = 16


def g_resolutions(imsize: int) -> list[int]:
    """Feature-map sizes after each G block, before the RGB layer: 4, 8, ..., imsize/2."""
    return [2**k for k in range(2, int(math.log2(imsize)))]


def d_resolutions(imsize: int) -> list[int]:
    """Feature-map sizes after each D block: imsize/2, ..., 4."""
    return [2**k for k in range(int(math.log2(imsize)) - 1, 1, -1)]


def width(conv_dim: int, imsize: int, res: int) -> int:
    return conv_dim * min(imsize // (2 * res), MAX_MULT)


def resnet_g_width(conv_dim: int, imsize: int, res: int) -> int:
    """G width of `resnet` on its r×r map: conv_dim · min(imsize / r, 16) (the authors' 128-px G:
    16, 16, 8, 4, 2, 1 × conv_dim on the 4² ... 128² maps). D uses ``width`` (1, 2, 4, 8, 16 × conv_dim)."""
    return conv_dim * min(imsize // res, MAX_MULT)


@dataclass
class ModelConfig:
    arch: str = "dcgan"
    imsize: int = 64
    z_dim: int = 128
    g_conv_dim: int = 64
    d_conv_dim: int = 64
    g_attn: tuple[int, ...] | None = None  # None → DEFAULT_ATTN[imsize]
    d_attn: tuple[int, ...] | None = None
    attention: str | None = None  # None → DEFAULT_FORM.get(arch, "paper")
    num_classes: int = 0  # 0: unconditional; K: conditional BatchNorm in G, projection in D (models/conditioning.py)
    init: str = "default"  # INITS; "default" is PyTorch's own initialisation

    def __post_init__(self):
        from sagan_cli.models import ARCHITECTURES

        if self.arch not in ARCHITECTURES:
            raise SaganError(f"--arch {self.arch!r} is not one of: {', '.join(ARCHITECTURES)}")
        check_imsize(self.imsize)
        if self.arch == "resnet" and self.imsize not in RESNET_IMSIZES:
            raise SaganError(f"--arch resnet does not support imsize {self.imsize} (supported: "
                             f"{', '.join(map(str, RESNET_IMSIZES))})")
        if self.attention is None:
            self.attention = DEFAULT_FORM.get(self.arch, "paper")
        if self.attention not in ATTENTION_FORMS:
            raise SaganError(f"--attention must be {' or '.join(repr(f) for f in ATTENTION_FORMS)}, got {self.attention!r}")
        if self.init not in INITS:
            raise SaganError(f"--init must be one of {', '.join(INITS)}, got {self.init!r}")
        for name in ("z_dim", "g_conv_dim", "d_conv_dim"):
            if getattr(self, name) < 1:
                raise SaganError(f"--{name.replace('_', '-')} must be positive")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise SaganError(f"num_classes must be a whole number >= 0 (0: unconditional), got {self.num_classes!r}")
        defaults = RESNET_DEFAULT_ATTN if self.arch == "resnet" else DEFAULT_ATTN
        if self.g_attn is None:
            self.g_attn = defaults[self.imsize][0]
        if self.d_attn is None:
            self.d_attn = defaults[self.imsize][1]
        self.g_attn = tuple(sorted(set(int(r) for r in self.g_attn)))
        self.d_attn = tuple(sorted(set(int(r) for r in self.d_attn), reverse=True))
        self._check_attn("g", self.g_attn, g_resolutions(self.imsize), self.g_conv_dim)
        self._check_attn("d", self.d_attn, d_resolutions(self.imsize), self.d_conv_dim)

    def _check_attn(self, net: str, attn, allowed, conv_dim):
        for r in attn:
            if r not in allowed:
                raise SaganError(
                    f"--{net}-attn {r}: {net.upper()} has no {r}x{r} feature map at imsize {self.imsize} "
                    f"(choose from {','.join(map(str, allowed))}, or 'none')"
                )
            widths = resnet_g_width if (self.arch, net) == ("resnet", "g") else width
            if widths(conv_dim, self.imsize, r) < 8:
                raise SaganError(f"--{net}-conv-dim {conv_dim} is too narrow for attention at {r}x{r} (needs >= 8 channels)")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["g_attn"] = list(self.g_attn)
        d["d_attn"] = list(self.d_attn)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (tuple(v) if k.endswith("_attn") else v) for k, v in d.items() if k in known})
