"""Class labels in training: the fakes' labels, the real ones moved to the device, the sample grid's rows.

Everything here returns argument tuples, ``()`` for an unconditional model and ``(y,)`` for a
conditional one, so the trainer calls ``G(z, *labels)`` and an unconditional architecture is called
exactly as before (``G(z)``), with no random number drawn for labels.

The fakes' labels (``--fake-labels``): ``uniform`` over the classes (the authors' code, BigGAN), or
``data``: in the dataset's class frequencies. They are drawn for the global batch from the global
generator (so a checkpoint's RNG state resumes them bit-exactly) and sharded like the noise.
"""

from __future__ import annotations

import numpy as np
import torch

GRID_ROW = 8  # images per row of a sample grid: a conditional grid has one class per row


class Labels:
    def __init__(self, num_classes: int, fake_labels: str, dataset_labels, batch: int, device, dist):
        self.k, self.batch, self.device, self.dist = num_classes, batch, device, dist
        self.freqs = None
        if num_classes and fake_labels == "data":
            counts = np.bincount(np.asarray(dataset_labels, dtype=np.int64), minlength=num_classes)[:num_classes]
            self.freqs = torch.as_tensor(counts, dtype=torch.float64).to(device)

    def fake(self) -> tuple:
        """This rank's slice of a global batch of fake labels."""
        if not self.k:
            return ()
        if self.freqs is None:
            y = torch.randint(self.k, (self.batch,), device=self.device)
        else:
            y = torch.multinomial(self.freqs, self.batch, replacement=True)
        return (y[self.dist.shard(self.batch)] if self.dist.enabled else y,)

    def real(self, y: torch.Tensor | None) -> tuple:
        """The real batch's labels on the device (none for an unconditional model, even from a labelled dataset)."""
        if not self.k:
            return ()
        return (y.to(self.device, non_blocking=True),)

    def joined(self, y_real: tuple, y_fake: tuple) -> tuple:
        """The labels of D's one batch of real, then fake images."""
        return (torch.cat(y_real + y_fake),) if self.k else ()

    def grid(self, n: int, chunk: int) -> list[tuple]:
        """The fixed sample grid's labels, per chunk of ``chunk`` latents: row r (GRID_ROW images) shows class r mod K."""
        if not self.k:
            return [()] * -(-n // chunk)
        y = ((torch.arange(n) // GRID_ROW) % self.k).to(self.device)
        return [(c,) for c in y.split(chunk)]


def bind(D, y: tuple):
    """``D`` with its labels fixed (for a penalty that calls ``D(x)``), or D itself when unconditional."""
    return (lambda x: D(x, *y)) if y else D


def data_record(dataset, num_classes: int) -> dict:
    """A checkpoint's ``data`` entry; a conditional model's carries the dataset's class names (id = index), so
    ``--class NAME`` works from the checkpoint alone (one written before them reads as "0".."K-1")."""
    record = {"path": str(dataset.path), "fingerprint": dataset.fingerprint, "count": len(dataset)}
    if num_classes and getattr(dataset, "classes", None):
        record["classes"] = list(dataset.classes)
    return record
