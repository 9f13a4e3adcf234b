"""Run the FID Inception over an image source: pool3 features (and unbiased logits) as float32 arrays."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np


@dataclass
class Features:
    pool3: np.ndarray  # N×2048 float32
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
            label: str | None = None) -> Features:
    """Features of every image of ``source``, in order; a progress bar (or plain lines) on ``console``."""
    import torch

    from sagan_cli.util.progress import Reporter

    n = len(source)
    pool3 = np.empty((n, 2048), np.float32)
    logits = np.empty((n, 1008), np.float32) if want_logits else None
    reporter = Reporter(label or f"inception ({source.label})", n, unit="img", console=console)
    done = 0
    try:
        with full_float32(), torch.no_grad():
            for images in source.batches(batch):
                feats, lg = net(images.to(device, non_blocking=True))
                k = feats.shape[0]
                pool3[done : done + k] = feats.float().cpu().numpy()
                if logits is not None:
                    logits[done : done + k] = lg.float().cpu().numpy()
                done += k
                reporter.update(done)
    finally:
        reporter.close()
    if done != n:  # a source that yields fewer images than it announced is a bug, not a user error
        raise RuntimeError(f"{source.label}: expected {n} images, got {done}")
    if not np.isfinite(pool3).all():
        from sagan_cli.util.errors import SaganError

        raise SaganError(f"the Inception features of the {source.label} images are not finite; "
                         "the weights file is probably damaged")
    return Features(pool3, logits)
