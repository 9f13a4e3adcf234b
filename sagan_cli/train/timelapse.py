"""The timelapse of a run: its sample grids (``samples/step-NNNNNNN.png``) as animation frames, in step order.

``sagan plot RUN --timelapse grow.gif`` checks first (``plan``: the grids there are, at most ``--frames`` of
them, the memory their upscaled frames need), so a failure leaves nothing behind, then decodes (``frames``):
each grid upscaled ``--scale`` times, nearest-neighbour, with a 'step N' strip below it. Writing the GIF or
WebP is ``util.images.save_animation``.
"""

from __future__ import annotations

import re
from pathlib import Path

from sagan_cli.util.errors import SaganError

STEP_PNG = re.compile(r"^step-(\d+)\.png$")
STRIP = 18  # px under each frame for its 'step N'


def sample_grids(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the run's ``samples/step-NNNNNNN.png``, in step order."""
    folder = Path(run_dir) / "samples"
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.glob("step-*.png") if (m := STEP_PNG.match(p.name)))


def pick(grids: list, frames: int | None) -> list:
    """At most ``frames`` of ``grids``, evenly spaced, the first and the last included (all of them: None)."""
    if frames is None or len(grids) <= frames:
        return grids
    return [grids[round(i * (len(grids) - 1) / (frames - 1))] for i in range(frames)]


def _size(path: Path) -> tuple[int, int]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except OSError as exc:
        raise SaganError(f"--timelapse: {path} is not a readable PNG ({exc})") from None


def plan(run_dir: str | Path, scale: int = 1, frames: int | None = None) -> list[tuple[int, Path]]:
    """The grids the timelapse will show, or a one-line error: none yet, or frames too big for memory."""
    from sagan_cli.util.images import check_output_size

    grids = pick(sample_grids(run_dir), frames)
    if not grids:
        raise SaganError(f"--timelapse: {run_dir} has no sample grids yet (samples/step-*.png, which train writes "
                         "every --sample-every steps)")
    width, height = _size(grids[0][1])
    check_output_size(len(grids), height + STRIP, width, scale, ("sample grids", "pass --frames N"))
    return grids


def frames(grids: list[tuple[int, Path]], scale: int = 1) -> list:
    """uint8 H×W×3 frames of ``grids`` (``plan``'s), upscaled ``scale`` times, each with its 'step N' strip."""
    import numpy as np
    from PIL import Image, ImageDraw

    from sagan_cli.util.images import upscale

    font, out, size = _font(12), [], None
    for step, path in grids:
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise SaganError(f"--timelapse: {path} is not a readable PNG ({exc})") from None
        if size is not None and pixels.shape != size:
            raise SaganError(f"--timelapse: {path} is {pixels.shape[1]}x{pixels.shape[0]}, the grids before it "
                             f"{size[1]}x{size[0]}: the run's sample grids differ in size")
        size = pixels.shape
        pixels = upscale(pixels, scale)
        canvas = Image.new("RGB", (pixels.shape[1], pixels.shape[0] + STRIP), (255, 255, 255))
        canvas.paste(Image.fromarray(pixels), (0, 0))
        ImageDraw.Draw(canvas).text((4, pixels.shape[0] + 2), f"step {step}", fill=(20, 20, 20), font=font)
        out.append(np.asarray(canvas))
    return out


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (ImportError, OSError, TypeError):  # no FreeType, or Pillow before 10.1: the bitmap font
        return ImageFont.load_default()
