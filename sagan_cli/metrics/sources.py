"""Where evaluated images come from: a generator, a prepared dataset, or a folder of image files.

Every source yields uint8 B×3×H×W CPU tensors. Generated images are quantised exactly as
``sagan sample`` writes them (``images.to_uint8``: (x+1)·127.5, rounded), and image i of a
checkpoint is the image of seed ``seed + i``, so ``sagan sample --seeds 0-N --outdir D`` followed by
``sagan evaluate --samples D`` sees the same pixels as evaluating the checkpoint directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from sagan_cli.util.errors import SaganError
from sagan_cli.util.images import IMAGE_SUFFIXES



class GeneratorSource:
    def __init__(self, G, z_dim: int, seeds: range, device):
        self.G, self.z_dim, self.seeds, self.device = G, z_dim, seeds, device
        self.label = "generated"

    def __len__(self) -> int:
        return len(self.seeds)

    def batches(self, batch: int) -> Iterator:
        import torch

        from sagan_cli.inspect.sample import generate, latent

        for start in range(0, len(self.seeds), batch):
            seeds = self.seeds[start : start + batch]
            images = generate(self.G, [latent(s, self.z_dim) for s in seeds], self.device, batch)
            yield torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


class ArraySource:
    """Rows ``indices`` (all when None) of an N×3×S×S uint8 array, e.g. a prepared dataset's memmap."""

    def __init__(self, images: np.ndarray, indices: np.ndarray | None = None, label: str = "real"):
        self.images, self.indices, self.label = images, indices, label

    def __len__(self) -> int:
        return len(self.images) if self.indices is None else len(self.indices)

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
    """Image files decoded with Pillow as RGB; consecutive files of one size are batched together."""

    def __init__(self, files: list[Path], label: str = "samples"):
        self.files, self.label = files, label

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise SaganError(f"cannot decode {path} as an image ({type(exc).__name__}); remove it from the folder") from None

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


def list_images(directory: Path) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SaganError(f"--samples {directory}: no images ({', '.join(IMAGE_SUFFIXES)}) and no prepared dataset "
                         f"(meta.json) in it")
    return files


def open_samples(path: Path, limit: int | None):
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
    files = list_images(path)
    source_count = _check_limit(path, len(files), limit)
    return ImageFilesSource(files[:source_count]), f"image folder {path} ({source_count} of {len(files)} files)"


def _check_limit(path: Path, count: int, limit: int | None) -> int:
    if limit is None:
        return count
    if limit > count:
        raise SaganError(f"--num-gen {limit}: {path} holds only {count} images; lower --num-gen or leave it out")
    return limit
