"""Model and training configuration: dataclasses that round-trip through plain dicts.

Checkpoints store these as dicts (so ``torch.load(weights_only=True)`` opens them).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sagan_cli.errors import SaganError

IMSIZES = (32, 64, 128, 256)
ATTENTION_FORMS = ("paper", "official")

# Attention placement by feature-map resolution. 64 px is the reference port's
# (G after the 16² and 32² blocks, D after the 8² and 4² blocks); the others keep
# G's layers at imsize/4 and imsize/2 (capped at 64², where N×N attention gets
# expensive) and D's at the two coarsest resolutions that carry enough context.
DEFAULT_ATTN = {
    32: ((8, 16), (8, 4)),
    64: ((16, 32), (8, 4)),
    128: ((32, 64), (16, 8)),
    256: ((32, 64), (32, 16)),
}

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


@dataclass
class ModelConfig:
    imsize: int = 64
    z_dim: int = 128
    g_conv_dim: int = 64
    d_conv_dim: int = 64
    g_attn: tuple[int, ...] | None = None  # None → DEFAULT_ATTN[imsize]
    d_attn: tuple[int, ...] | None = None
    attention: str = "paper"

    def __post_init__(self):
        if self.imsize not in IMSIZES:
            raise SaganError(f"--imsize must be one of {', '.join(map(str, IMSIZES))}, got {self.imsize}")
        if self.attention not in ATTENTION_FORMS:
            raise SaganError(f"--attention must be 'paper' or 'official', got {self.attention!r}")
        for name in ("z_dim", "g_conv_dim", "d_conv_dim"):
            if getattr(self, name) < 1:
                raise SaganError(f"--{name.replace('_', '-')} must be positive")
        if self.g_attn is None:
            self.g_attn = DEFAULT_ATTN[self.imsize][0]
        if self.d_attn is None:
            self.d_attn = DEFAULT_ATTN[self.imsize][1]
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
            if width(conv_dim, self.imsize, r) < 8:
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


@dataclass
class TrainConfig:
    steps: int = 100_000
    batch: int = 64
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    ema: bool = True
    ema_decay: float = 0.999
    ema_start: int = 1000
    amp: bool = True  # bf16 autocast; only takes effect on CUDA
    compile: bool | None = None  # None → on for CUDA, off elsewhere
    seed: int = 0
    log_every: int = 100
    sample_every: int = 1000
    ckpt_every: int = 1000
    keep_ckpts: int = 5
    n_samples: int = 64
    data: str = ""
    name: str = ""
    tensorboard: bool = False
    sync_bn: bool = True  # with several processes: G's BatchNorm statistics over the global batch

    def __post_init__(self):
        checks = [
            ("steps", self.steps >= 1, ">= 1"),
            ("batch", self.batch >= 1, ">= 1"),
            ("lr-g", self.lr_g > 0, "> 0"),
            ("lr-d", self.lr_d > 0, "> 0"),
            ("lr-g", math.isfinite(self.lr_g), "finite"),  # inf passes '> 0' and would only 'diverge' later
            ("lr-d", math.isfinite(self.lr_d), "finite"),
            ("beta1", 0 <= self.beta1 < 1, "in [0, 1)"),
            ("beta2", 0 <= self.beta2 < 1, "in [0, 1)"),
            ("ema-decay", 0 < self.ema_decay < 1, "in (0, 1)"),
            ("ema-start", self.ema_start >= 0, ">= 0"),
            ("log-every", self.log_every >= 1, ">= 1"),
            ("sample-every", self.sample_every >= 1, ">= 1"),
            ("ckpt-every", self.ckpt_every >= 1, ">= 1"),
            ("keep-ckpts", self.keep_ckpts >= 1, ">= 1"),
            ("n-samples", self.n_samples >= 1, ">= 1"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise SaganError(f"--{name} must be {want}, got {getattr(self, name.replace('-', '_'))}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
