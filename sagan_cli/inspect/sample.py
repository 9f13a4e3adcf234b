"""Images from a checkpoint: per-seed latents, truncation, grids, slerp interpolation sheets and their animation frames.

A seed always gives the same z (drawn on the CPU from ``torch.Generator().manual_seed(seed)``),
whatever the device or batch size, so ``--seeds 12`` is a stable name for an image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sagan_cli.util.errors import SaganError

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
MAX_SEEDS = 100_000


def parse_seeds(spec: str) -> list[int]:
    """'0-63', '1,5,9', '0-3,10' → list of ints (ranges inclusive)."""
    seeds: list[int] = []
    for part in spec.split(","):
        m = _RANGE.match(part)
        if not m:
            raise SaganError(f"--seeds {spec!r}: expected numbers and ranges like 0-63 or 1,5,9")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise SaganError(f"--seeds {spec!r}: range {lo}-{hi} runs backwards")
        seeds.extend(range(lo, hi + 1))
        if len(seeds) > MAX_SEEDS:
            raise SaganError(f"--seeds {spec!r}: more than {MAX_SEEDS} seeds")
    return seeds


def latent(seed: int, z_dim: int, truncation: float | None = None):
    """z for one seed; with ``truncation`` T, entries with |z| > T are redrawn (truncated normal)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(z_dim, generator=gen)
    if truncation is not None:
        for _ in range(1000):
            bad = z.abs() > truncation
            if not bad.any():
                break
            z[bad] = torch.randn(int(bad.sum()), generator=gen)
    return z


def slerp(z0, z1, t: float):
    import torch

    a, b = z0 / z0.norm(), z1 / z1.norm()
    omega = torch.acos((a * b).sum().clamp(-1.0, 1.0))
    if float(omega) < 1e-6:
        return (1 - t) * z0 + t * z1
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * z0 + (torch.sin(t * omega) / so) * z1


def generate(G, zs, device, batch: int = 64, ys=None) -> np.ndarray:
    """uint8 B×H×W×3 images for a stack of latents; ``ys``: their class ids (a list or LongTensor) or class
    weights (B×K floats) for a conditional G (inspect/classes.py)."""
    import torch

    from sagan_cli.util.images import to_uint8

    zs = torch.stack(list(zs))
    if ys is not None and not torch.is_tensor(ys):
        ys = torch.as_tensor(ys, dtype=torch.long)
    labels = ys.split(batch) if ys is not None else [None] * -(-len(zs) // batch)
    out = []
    with torch.no_grad():
        for chunk, y in zip(zs.split(batch), labels):
            out.append(to_uint8(G(chunk.to(device), *(() if y is None else (y.to(device),)))))
    return np.concatenate(out)


def interpolation_latents(seeds: list[int], steps: int, z_dim: int, truncation: float | None):
    """Rows of ``steps`` slerp latents between consecutive seeds (endpoints included)."""
    if len(seeds) < 2:
        raise SaganError("--interpolate needs at least two seeds (e.g. --seeds 0-7)")
    ends = [latent(s, z_dim, truncation) for s in seeds]
    ts = [i / (steps - 1) for i in range(steps)]
    return [slerp(a, b, t) for a, b in zip(ends[:-1], ends[1:]) for t in ts]


def animation_frames(images: np.ndarray, steps: int, nrow: int | None = None) -> list[np.ndarray]:
    """The frames of an animated interpolation: ``images`` are rows of ``steps`` images (one row per seed pair,
    as ``interpolation_latents`` orders them); frame t shows every pair's step t side by side (``nrow`` per row,
    default all in one row)."""
    from sagan_cli.util.images import grid

    pairs = len(images) // steps
    walk = images.reshape(pairs, steps, *images.shape[1:])
    return [grid(walk[:, t], nrow=nrow or pairs) for t in range(steps)]


def write_per_image(images: np.ndarray, seeds: list[int], outdir: Path, classes: list[int] | None = None) -> list[Path]:
    """seedNNNNNN.png per image; with ``classes`` (several asked for) seedNNNNNN-classK.png."""
    from sagan_cli.util.images import save_png

    if outdir.exists() and not outdir.is_dir():
        raise SaganError(f"--outdir {outdir} exists and is not a directory")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from sagan_cli.util.fsutil import why

        raise SaganError(f"--outdir {outdir}: cannot create the folder ({why(outdir, exc)})") from None
    names = [f"seed{s:06d}.png" for s in seeds] if classes is None else [f"seed{s:06d}-class{c}.png" for s, c in zip(seeds, classes)]
    return [save_png(img, outdir / name) for img, name in zip(images, names)]
