"""Batches from a prepared dataset: a resumable shuffling sampler and a background prefetcher.

The sampler draws a fresh permutation every epoch from (seed, epoch), so its whole
state is three integers and a resumed run sees exactly the batches it would have
seen. ``batch`` is the global batch: consecutive slices of the permutation, of
which rank r of W takes the r-th W-th part (disjoint shards). The sequence of global
batches does not depend on W, so a run resumes under any world size. The last
partial batch of an epoch is dropped. A labelled dataset's labels are taken with the same indices
as its images, so the sampler state, resume and the rank shards carry them unchanged.
"""

from __future__ import annotations

import queue
import threading

import numpy as np


class EpochSampler:
    def __init__(self, n: int, batch: int, seed: int = 0, rank: int = 0, world: int = 1, epoch: int = 0, position: int = 0):
        if batch > n:
            raise ValueError(f"batch {batch} larger than the dataset ({n})")
        if batch % world:
            raise ValueError(f"batch {batch} does not divide over {world} ranks")
        self.n, self.batch, self.seed, self.rank, self.world = n, batch, seed, rank, world
        self.local = batch // world
        self.batches_per_epoch = n // batch
        self.epoch, self.position = epoch, position
        self._perm = None

    def _epoch_perm(self) -> np.ndarray:
        if self._perm is None:
            self._perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        return self._perm

    def next_indices(self) -> np.ndarray:
        """This rank's indices of the next global batch."""
        if self.position >= self.batches_per_epoch:
            self.epoch, self.position, self._perm = self.epoch + 1, 0, None
        start = self.position * self.batch + self.rank * self.local
        idx = self._epoch_perm()[start : start + self.local]
        self.position += 1
        # Sorted indices read the memmap front to back; order inside a batch is irrelevant.
        return np.sort(idx)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}


class Prefetcher:
    """Reads batches on a background thread (optionally into pinned memory).

    ``next()`` returns ``((uint8 tensor B×3×S×S, int64 tensor B of class ids or None),
    sampler_state_after_this_batch)`` — labels when the dataset has them (``labels``),
    row for row with the images; the training loop keeps the state of the last batch it
    *consumed*, which is what a checkpoint must record (the thread runs ahead).
    """

    def __init__(self, images: np.ndarray, sampler: EpochSampler, pin_memory: bool = False, depth: int = 4,
                 labels: np.ndarray | None = None):
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self.images, self.labels, self.sampler, self.pin = images, labels, sampler, pin_memory
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="sagan-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        import torch

        try:
            while not self._stop.is_set():
                idx = self.sampler.next_indices()
                batch = torch.from_numpy(np.ascontiguousarray(self.images[idx]))
                labels = None if self.labels is None else torch.from_numpy(np.array(self.labels[idx], dtype=np.int64))
                if self.pin:
                    batch = batch.pin_memory()
                    labels = None if labels is None else labels.pin_memory()
                item = ((batch, labels), self.sampler.state_dict())
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # surface read errors in the training thread
            self._q.put(exc)

    def next(self):
        item = self._q.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
