"""Benchmark the training data path alone: prepared dataset (memmap) → sampler → prefetch thread.

Writes a prepared dataset of ``--images`` random uint8 images to a temporary directory,
opens it the way ``sagan train`` does (``open_dataset``: ``np.load(mmap_mode="r")``),
and drains the real ``EpochSampler`` + ``Prefetcher`` pair as fast as it delivers,
with pinned memory on CUDA (plus the host→device copy of each batch there).
Nothing else runs, so the figure is the loader's ceiling; ``train_bench.py`` compares it
with the training step's demand (the issue asks for at least 10×).

By default the dataset was just written, so it is read from the page cache (a warm cache, as in
any epoch after the first on a machine whose RAM holds the dataset). ``--cold`` evicts its pages
before each drain (``posix_fadvise(DONTNEED)`` after an fsync, no root needed), so every batch is
read from the disk, as in a first epoch or a dataset larger than RAM.

    python benchmarks/loader_bench.py --imsize 64 --batch 64 [--cold] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def make_loader(images, batch: int, pin: bool):
    """The one place this benchmark builds the loader, as ``Trainer.run`` does."""
    from sagan_cli.data.loader import EpochSampler, Prefetcher

    sampler = EpochSampler(len(images), batch, seed=0)
    return Prefetcher(images, sampler, pin_memory=pin)


def evict_from_page_cache(path: Path) -> bool:
    """Ask the kernel to drop ``path``'s cached pages (False where posix_fadvise is missing)."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def resident_fraction(path: Path) -> float | None:
    """Share of ``path``'s pages in the page cache (mincore of a private mapping that is never
    touched), or None where this cannot be asked."""
    import ctypes
    import ctypes.util
    import mmap

    size = os.path.getsize(path)
    if size == 0 or not hasattr(mmap, "MAP_PRIVATE"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = (ctypes.c_ubyte * pages)()
        with open(path, "rb") as fh:
            mm = mmap.mmap(fh.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            view = ctypes.c_char.from_buffer(mm)  # only its address is used; nothing is read or written
            rc = libc.mincore(ctypes.c_void_p(ctypes.addressof(view)), ctypes.c_size_t(size), vec)
            del view
        finally:
            mm.close()
    except (OSError, AttributeError, ValueError, TypeError, BufferError):
        return None
    return sum(v & 1 for v in vec) / pages if rc == 0 else None


def measure_loader(imsize: int = 64, batch: int = 64, n_images: int = 4096, batches: int = 200,
                   device: str = "cpu", repeat: int = 3, cold: bool = False) -> dict:
    """Images/s the prefetcher delivers (median of ``repeat`` drains of ``batches`` batches)."""
    import numpy as np
    import torch

    from sagan_cli.data.dataset import open_dataset, save_dataset

    dev = torch.device(device)
    pin = dev.type == "cuda"
    n_images = max(n_images, batch)
    with tempfile.TemporaryDirectory(prefix="sagan-loader-bench-") as tmp:
        rng = np.random.default_rng(0)
        save_dataset(Path(tmp) / "ds", rng.integers(0, 256, (n_images, 3, imsize, imsize), dtype=np.uint8),
                     source="bench", category=None, split=None)
        rates, evicted, resident = [], cold, []
        npy = Path(tmp) / "ds" / "images.npy"
        for _ in range(repeat):
            if cold:  # with nothing mapping the file any more: mapped pages are not evicted
                gc.collect()
                evicted = evict_from_page_cache(npy) and evicted
                resident.append(resident_fraction(npy))
            ds = open_dataset(Path(tmp) / "ds", imsize)
            loader = make_loader(ds.images, batch, pin)
            try:
                loader.next()  # thread started, first batch read
                t0 = time.perf_counter()
                for _ in range(batches):
                    (x, _labels), _state = loader.next()
                    if pin:
                        x = x.to(dev, non_blocking=True)
                if pin:
                    torch.cuda.synchronize(dev)
                rates.append(batches * batch / (time.perf_counter() - t0))
            finally:
                loader.close()
                del loader, ds  # the Prefetcher holds the memmap too
    stayed = [r for r in resident if r is not None and r >= 0.5]  # tmpfs pages cannot be dropped
    if cold and not evicted:
        cache = "cold requested, but this OS cannot evict a file's pages (posix_fadvise): read warm"
    elif cold and stayed:
        evicted = False
        cache = (f"cold requested, but the kernel kept the file's pages cached ({max(stayed):.0%} resident; "
                 f"is {tempfile.gettempdir()} a tmpfs? set TMPDIR to a disk): read warm")
    elif cold:
        cache = "cold (the file's pages evicted before each drain: read from the disk)"
    else:
        cache = "warm (dataset just written; read through the page cache)"
    return {
        "img_per_s": statistics.median(rates),
        "img_per_s_runs": rates,
        "imsize": imsize,
        "batch": batch,
        "dataset_images": n_images,
        "batches_per_run": batches,
        "pinned_and_copied_to_device": pin,
        "cache": cache,
        "cold": bool(cold and evicted),
        "resident_after_evict": resident if cold else None,  # per drain, share of pages still cached
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--imsize", type=int, default=64)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--images", type=int, default=4096)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cold", action="store_true", help="evict the dataset from the page cache before each drain")
    ap.add_argument("--json", metavar="OUT", help="also write the result as JSON to OUT ('-' for stdout)")
    args = ap.parse_args(argv)
    res = measure_loader(args.imsize, args.batch, args.images, args.batches, args.device, cold=args.cold)
    print(f"loader ({args.imsize}px, batch {args.batch}, {res['dataset_images']} images, {res['cache']}): "
          f"{res['img_per_s']:,.0f} img/s (runs: {', '.join(f'{r:,.0f}' for r in res['img_per_s_runs'])})")
    if args.json:
        text = json.dumps(res, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
