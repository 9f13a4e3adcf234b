"""Where evaluated images come from: a generator, a prepared dataset, or a folder of image files.

Every source yields uint8 B×3×H×W CPU tensors. Generated images are quantised exactly as
``sagan sample`` writes them (``images.to_uint8``: (x+1)·127.5, rounded), and image i of a
checkpoint is the image of seed ``seed + i``, so ``sagan sample --seeds 0-N --outdir D`` followed by
``sagan evaluate --samples D`` sees the same pixels as evaluating the checkpoint directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from sagan_cli.util.errors import SaganError
from sagan_cli.util.images import IMAGE_SUFFIXES


class GeneratorSource:
    """Image i from seed ``seeds[i]``; a conditional G (``num_classes``) draws it in class ``klass``, or in the
    seed's uniform class (inspect/classes.py) when None, as `sagan sample` draws that seed."""

    def __init__(self, G, z_dim: int, seeds: range, device, imsize: int | None = None, num_classes: int = 0,
                 klass: int | None = None):
        self.G, self.z_dim, self.seeds, self.device, self.imsize = G, z_dim, seeds, device, imsize
        self.num_classes, self.klass = num_classes, klass
        self.label = "generated"

    def head(self, n: int) -> "GeneratorSource":
        """The first ``n`` images of this source."""
        return GeneratorSource(self.G, self.z_dim, self.seeds[:n], self.device, self.imsize, self.num_classes, self.klass)

    def __len__(self) -> int:
        return len(self.seeds)

    def sizes(self) -> dict[tuple[int, int], str]:
        """{(height, width): an image of that size} over the images it yields."""
        return {} if self.imsize is None else {(self.imsize, self.imsize): f"seed {self.seeds[0]}"}

    def batches(self, batch: int) -> Iterator:
        import torch

        from sagan_cli.inspect.classes import uniform_labels
        from sagan_cli.inspect.sample import generate, latent

        for start in range(0, len(self.seeds), batch):
            seeds = self.seeds[start : start + batch]
            ys = None
            if self.num_classes:
                ys = [self.klass] * len(seeds) if self.klass is not None else uniform_labels(seeds, self.num_classes)
            images = generate(self.G, [latent(s, self.z_dim) for s in seeds], self.device, batch, ys)
            yield torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


class ArraySource:
    """Rows ``indices`` (all when None) of an N×3×S×S uint8 array, e.g. a prepared dataset's memmap."""

    def __init__(self, images: np.ndarray, indices: np.ndarray | None = None, label: str = "real"):
        self.images, self.indices, self.label = images, indices, label

    def __len__(self) -> int:
        return len(self.images) if self.indices is None else len(self.indices)

    def sizes(self) -> dict[tuple[int, int], str]:
        return {tuple(int(v) for v in self.images.shape[-2:]): f"{self.label} image 0"}

    def batches(self, batch: int) -> Iterator:
        import torch

        for start in range(0, len(self), batch):
            if self.indices is None:
                chunk = self.images[start : start + batch]
            else:
                chunk = self.images[self.indices[start : start + batch]]
            # a copy: a slice of the read-only memmap would make torch warn about non-writable memory
            yield torch.from_numpy(np.array(chunk, dtype=np.uint8, order="C"))


class ImageFilesSource:
    """Image files decoded as RGB by the reader `prepare folder` uses (``data.imagefolder``); consecutive
    files of one size are batched together. ``open_samples`` has checked that every one decodes."""

    def __init__(self, files: list[Path], label: str = "samples", sizes: dict[tuple[int, int], str] | None = None):
        self.files, self.label, self._sizes = files, label, sizes or {}

    def __len__(self) -> int:
        return len(self.files)

    def sizes(self) -> dict[tuple[int, int], str]:
        """{(height, width): the first file of that size}, as the folder's scan found them."""
        return dict(self._sizes)

    def _read(self, path: Path) -> np.ndarray:
        from sagan_cli.data.imagefolder import read_rgb

        img, reason = read_rgb(path)
        if img is None:  # it decoded when the folder was scanned: changed since
            raise SaganError(f"cannot decode {path} as an image any more ({reason}); it changed during the evaluation")
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)

    def batches(self, batch: int) -> Iterator:
        import torch

        pending: list[np.ndarray] = []
        for path in self.files:
            img = self._read(path)
            if pending and (img.shape != pending[0].shape or len(pending) == batch):
                yield torch.from_numpy(np.stack(pending))
                pending = []
            pending.append(img)
        if pending:
            yield torch.from_numpy(np.stack(pending))


def open_folder(path: Path, limit: int | None, warn: Callable[[str], None]):
    """A folder of image files, read by `prepare folder`'s rules (recursive; undecodable files skipped, with
    a warning). Only readable images count: ``limit`` takes the first N of them."""
    from sagan_cli.data.imagefolder import scan

    found = scan(path, limit)
    first = f"first: {found.skipped[0][0]}: {found.skipped[0][1]}" if found.skipped else ""
    if found.listed == 0:
        raise SaganError(f"--samples {path}: no images ({', '.join(IMAGE_SUFFIXES)}) and no prepared dataset "
                         f"(meta.json) in it")
    if not found.names:
        raise SaganError(f"--samples {path}: none of its {found.listed} image files can be read as an image ({first})")
    if limit is not None and len(found.names) < limit:
        held = f"{len(found.names)} readable images ({len(found.skipped)} skipped, {first})" if found.skipped \
            else f"{len(found.names)} images"
        raise SaganError(f"--num {limit}: {path} holds only {held}; lower --num or leave it out")
    if found.skipped:
        n = len(found.skipped)
        warn(f"--samples {path}: {n} image file{'s' if n != 1 else ''} skipped, not readable as an image ({first})")
    desc = f"image folder {path} ({len(found.names)} of {found.listed} files)"
    sizes: dict[tuple[int, int], str] = {}
    for name, size in zip(found.names, found.sizes):
        sizes.setdefault(size, name)
    return ImageFilesSource([path / name for name in found.names], sizes=sizes), desc


def open_samples(path: Path, limit: int | None, warn: Callable[[str], None] = lambda text: None):
    """``--samples DIR``: a prepared dataset (has meta.json) or a folder of image files.

    Returns (source, description). ``limit`` takes the first N images; more than there are is an error.
    """
    from sagan_cli.data.dataset import META, open_dataset

    path = Path(path)
    if not path.exists():
        raise SaganError(f"--samples {path}: no such directory")
    if not path.is_dir():
        raise SaganError(f"--samples {path}: expected a directory of images or a prepared dataset, got a file")
    if (path / META).exists():
        ds = open_dataset(path)
        count = len(ds)
        source_count = _check_limit(path, count, limit)
        indices = None if source_count == count else np.arange(source_count)
        return ArraySource(ds.images, indices, label="samples"), f"prepared dataset {path} ({source_count} of {count})"
    return open_folder(path, limit, warn)


def _check_limit(path: Path, count: int, limit: int | None) -> int:
    if limit is None:
        return count
    if limit > count:
        raise SaganError(f"--num {limit}: {path} holds only {count} images; lower --num or leave it out")
    return limit
