"""The mirror error: how far images are from their own left↔right reflection, computed from the images.

mirror error = mean over images, channels and pixels of |x − fliplr(x)|, with x on the [0, 1] scale (uint8
/ 255). Every scene of the built-in synthetic dataset (`sagan prepare synthetic`) is exactly mirrored, so
the data's value is 0, and a generator's value measures how well each half of its images agrees with the
other: the long-range consistency that self-attention is meant to give (docs/fidelity.md). On other data
it is a plain statistic, reported with the real images' own value beside it for comparison.

Exact and deterministic: the absolute differences of uint8 values are summed as integers, so the value
does not depend on the batch sizes, the order or the device.
"""

from __future__ import annotations

import torch


def mirror_sums(batch: torch.Tensor) -> torch.Tensor:
    """Per image of a uint8 B×C×H×W batch: the integer sum of |x − fliplr(x)| over its values (int64)."""
    x = batch.to(torch.int64)
    return (x - x.flip(-1)).abs().flatten(1).sum(dim=1)


def mirror_errors(batch: torch.Tensor) -> torch.Tensor:
    """Per image of a uint8 B×C×H×W batch: mean |x − fliplr(x)| on the [0, 1] scale, float64."""
    return mirror_sums(batch).to(torch.float64) / (batch[0].numel() * 255.0)


class MirrorAccumulator:
    """Fed both sides' uint8 batches (``feed``); ``result()``: the generated images' mirror error, and the real
    images' when any were fed (evaluate feeds them when another chosen metric opens the real side)."""

    def __init__(self, num_gen: int, num_real: int, device):
        self.device = torch.device(device)
        self.sums = {"generated": 0, "real": 0}  # integer sums of |x − fliplr(x)|, uint8 units
        self.counts = {"generated": 0, "real": 0}  # images
        self.values: int | None = None  # values per image (C·H·W)

    def feed(self, side: str, batch: torch.Tensor) -> None:
        if batch.dtype != torch.uint8:
            raise TypeError(f"the mirror error is fed uint8 images, got {batch.dtype}")
        self.values = batch[0].numel() if len(batch) else self.values
        self.sums[side] += int(mirror_sums(batch.to(self.device)).sum())
        self.counts[side] += int(batch.shape[0])

    def result(self) -> dict:
        if not self.counts["generated"]:
            raise RuntimeError("mirror error: no generated images were fed")
        scale = self.values * 255.0
        out = {"mirror_error": self.sums["generated"] / (self.counts["generated"] * scale)}
        if self.counts["real"]:
            out["mirror_error_real"] = self.sums["real"] / (self.counts["real"] * scale)
        return out

    def protocol(self) -> str:
        real = f", real images: {self.counts['real']}" if self.counts["real"] else ""
        return (f"mean |x - fliplr(x)| over images, channels and pixels, x = uint8 / 255; "
                f"{self.counts['generated']} generated images{real}")
