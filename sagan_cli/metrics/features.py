"""Run the FID Inception over an image source: pool3 features (and unbiased logits) as float32 arrays.

The same pass hands every uint8 batch to ``taps`` (the accumulators of metrics computed from the images,
such as SWD), so each source is read, or generated, once; with no network it only feeds the taps."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np


@dataclass
class Features:
    pool3: np.ndarray | None  # N×2048 float32 (None: no network ran)
    logits: np.ndarray | None  # N×1008 float32 (classifier without bias), when asked for


@contextlib.contextmanager
def full_float32():
    """TF32 off for the duration (cuBLAS and cuDNN), so CUDA features match CPU ones to float32 precision."""
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


def extract(net, source, device, batch: int, want_logits: bool = False, console=None,
            label: str | None = None, taps=()) -> Features:
    """Features of every image of ``source``, in order; a progress bar (or plain lines) on ``console``.

    Each uint8 batch also goes to every callable in ``taps``, in order; ``net`` None: only that."""
    import torch

    from sagan_cli.util.progress import Reporter

    n = len(source)
    pool3 = np.empty((n, 2048), np.float32) if net is not None else None
    logits = np.empty((n, 1008), np.float32) if want_logits and net is not None else None
    reporter = Reporter(label or f"inception ({source.label})", n, unit="img", console=console)
    done = 0
    try:
        with full_float32(), torch.no_grad():
            for images in source.batches(batch):
                for tap in taps:
                    tap(images)
                k = images.shape[0]
                if net is not None:
                    feats, lg = net(images.to(device, non_blocking=True))
                    pool3[done : done + k] = feats.float().cpu().numpy()
                    if logits is not None:
                        logits[done : done + k] = lg.float().cpu().numpy()
                done += k
                reporter.update(done)
    finally:
        reporter.close()
    if done != n:  # a source that yields fewer images than it announced is a bug, not a user error
        raise RuntimeError(f"{source.label}: expected {n} images, got {done}")
    if pool3 is not None and not np.isfinite(pool3).all():
        from sagan_cli.util.errors import SaganError

        raise SaganError(f"the Inception features of the {source.label} images are not finite; "
                         "the weights file is probably damaged")
    return Features(pool3, logits)
