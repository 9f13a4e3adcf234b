"""Bilinear resize exactly as TensorFlow 1.x's ``tf.image.resize_bilinear`` (align_corners=False).

The FID Inception graph of 2015-12-05 resizes its input with this op, and published FID numbers
(TTUR, StyleGAN, torch-fidelity) inherit it. It differs from ``F.interpolate(mode="bilinear")``:
the source coordinate of output pixel ``i`` is ``i * in / out`` (no half-pixel offset), the
upper neighbour is clamped to the last row/column, and everything is computed in float32 in
TensorFlow's order (interpolate along x on the two rows, then along y).
"""

from __future__ import annotations


def source_grid(in_size: int, out_size: int, device=None):
    """(lower index, upper index, fraction) of every output position, TF1's legacy scaler."""
    import torch

    scale = torch.tensor(in_size / out_size, dtype=torch.float32)  # TF: (float)in / out
    pos = torch.arange(out_size, dtype=torch.float32) * scale
    lower = pos.floor()
    frac = pos - lower
    lo = lower.long().clamp_(max=in_size - 1)
    hi = (lo + 1).clamp_(max=in_size - 1)
    return lo.to(device), hi.to(device), frac.to(device)


def resize_bilinear_tf1(x, size: int | tuple[int, int]):
    """Resize a float B×C×H×W tensor to ``size`` (an int for square) like TF1's resize_bilinear."""
    import torch

    if x.dim() != 4 or not torch.is_floating_point(x):
        raise ValueError(f"expected a float B×C×H×W tensor, got {tuple(x.shape)} {x.dtype}")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    y0, y1, dy = source_grid(x.shape[2], out_h, x.device)
    x0, x1, dx = source_grid(x.shape[3], out_w, x.device)
    dy = dy.to(x.dtype).view(1, 1, out_h, 1)
    dx = dx.to(x.dtype).view(1, 1, 1, out_w)
    top_rows, bottom_rows = x.index_select(2, y0), x.index_select(2, y1)
    top_left, top_right = top_rows.index_select(3, x0), top_rows.index_select(3, x1)
    top = top_left + (top_right - top_left) * dx
    del top_left, top_right, top_rows
    bottom_left, bottom_right = bottom_rows.index_select(3, x0), bottom_rows.index_select(3, x1)
    bottom = bottom_left + (bottom_right - bottom_left) * dx
    return top + (bottom - top) * dy
