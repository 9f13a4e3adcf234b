"""The FID Inception-v3: TensorFlow's 2015-12-05 ImageNet graph, layer for layer, in PyTorch.

This is the network behind every published FID/IS/KID number (TTUR, StyleGAN, torch-fidelity,
pytorch-fid). It is *not* torchvision's Inception-v3: the TF graph averages over valid pixels only
in its 3×3 average pools (``count_include_pad=False``), uses a 3×3 max pool in the pooling branch
of the last block, and ends in a 1008-way classifier. Module names follow torchvision's
(``Conv2d_1a_3x3``, ``Mixed_5b.branch1x1``, ..., ``fc``) because both published weight files use
them; ``weights.py`` loads those files.

Input protocol (``preprocess``): uint8 RGB B×3×H×W → float32 → TF1 bilinear resize to 299×299
→ (x − 128) / 128. Outputs: ``pool3`` (B×2048, the global average pool, used by FID/KID/PR) and
``logits`` without the classifier bias (B×1008, used by IS), both float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sagan_cli.metrics.resize import resize_bilinear_tf1

INPUT_SIZE = 299
NUM_CLASSES = 1008
POOL3_DIM = 2048


class ConvBN(nn.Module):
    """Conv (no bias) → BatchNorm (eps 1e-3, TF's) → ReLU: every convolution of the graph."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


# Kernel shapes of the factorised convolutions, with the padding that keeps the size.
K1x7, K7x1 = ((1, 7), (0, 3)), ((7, 1), (3, 0))
K1x3, K3x1 = ((1, 3), (0, 1)), ((3, 1), (1, 0))


class Mixed(nn.Module):
    """An Inception block: named ConvBN layers, wired by ``forward`` of the subclass.

    ``layers`` maps a layer name to (in, out, kernel, stride, padding); the names are the
    state-dict keys of the published weight files.
    """

    def __init__(self, layers: dict[str, tuple]):
        super().__init__()
        for name, (cin, cout, kernel, stride, padding) in layers.items():
            self.add_module(name, ConvBN(cin, cout, kernel, stride, padding))

    def path(self, x, *names: str):
        for name in names:
            x = getattr(self, name)(x)
        return x


def _avg3(x):
    """TF's 3×3/1 'SAME' average pool: padded pixels are not counted."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class BlockA(Mixed):  # Mixed_5b, 5c, 5d (35×35)
    def __init__(self, cin: int, pool_features: int):
        super().__init__({
            "branch1x1": (cin, 64, 1, 1, 0),
            "branch5x5_1": (cin, 48, 1, 1, 0),
            "branch5x5_2": (48, 64, 5, 1, 2),
            "branch3x3dbl_1": (cin, 64, 1, 1, 0),
            "branch3x3dbl_2": (64, 96, 3, 1, 1),
            "branch3x3dbl_3": (96, 96, 3, 1, 1),
            "branch_pool": (cin, pool_features, 1, 1, 0),
        })

    def forward(self, x):
        return torch.cat([
            self.path(x, "branch1x1"),
            self.path(x, "branch5x5_1", "branch5x5_2"),
            self.path(x, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
            self.branch_pool(_avg3(x)),
        ], 1)


class BlockB(Mixed):  # Mixed_6a: 35×35 → 17×17
    def __init__(self, cin: int):
        super().__init__({
            "branch3x3": (cin, 384, 3, 2, 0),
            "branch3x3dbl_1": (cin, 64, 1, 1, 0),
            "branch3x3dbl_2": (64, 96, 3, 1, 1),
            "branch3x3dbl_3": (96, 96, 3, 2, 0),
        })

    def forward(self, x):
        return torch.cat([
            self.path(x, "branch3x3"),
            self.path(x, "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)


class BlockC(Mixed):  # Mixed_6b..6e (17×17), factorised 7×7 convolutions
    def __init__(self, cin: int, c7: int):
        super().__init__({
            "branch1x1": (cin, 192, 1, 1, 0),
            "branch7x7_1": (cin, c7, 1, 1, 0),
            "branch7x7_2": (c7, c7, K1x7[0], 1, K1x7[1]),
            "branch7x7_3": (c7, 192, K7x1[0], 1, K7x1[1]),
            "branch7x7dbl_1": (cin, c7, 1, 1, 0),
            "branch7x7dbl_2": (c7, c7, K7x1[0], 1, K7x1[1]),
            "branch7x7dbl_3": (c7, c7, K1x7[0], 1, K1x7[1]),
            "branch7x7dbl_4": (c7, c7, K7x1[0], 1, K7x1[1]),
            "branch7x7dbl_5": (c7, 192, K1x7[0], 1, K1x7[1]),
            "branch_pool": (cin, 192, 1, 1, 0),
        })

    def forward(self, x):
        return torch.cat([
            self.path(x, "branch1x1"),
            self.path(x, "branch7x7_1", "branch7x7_2", "branch7x7_3"),
            self.path(x, *(f"branch7x7dbl_{i}" for i in range(1, 6))),
            self.branch_pool(_avg3(x)),
        ], 1)


class BlockD(Mixed):  # Mixed_7a: 17×17 → 8×8
    def __init__(self, cin: int):
        super().__init__({
            "branch3x3_1": (cin, 192, 1, 1, 0),
            "branch3x3_2": (192, 320, 3, 2, 0),
            "branch7x7x3_1": (cin, 192, 1, 1, 0),
            "branch7x7x3_2": (192, 192, K1x7[0], 1, K1x7[1]),
            "branch7x7x3_3": (192, 192, K7x1[0], 1, K7x1[1]),
            "branch7x7x3_4": (192, 192, 3, 2, 0),
        })

    def forward(self, x):
        return torch.cat([
            self.path(x, "branch3x3_1", "branch3x3_2"),
            self.path(x, *(f"branch7x7x3_{i}" for i in range(1, 5))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], 1)


class BlockE(Mixed):  # Mixed_7b (average pool branch) and Mixed_7c (max pool branch), 8×8
    def __init__(self, cin: int, pool: str):
        super().__init__({
            "branch1x1": (cin, 320, 1, 1, 0),
            "branch3x3_1": (cin, 384, 1, 1, 0),
            "branch3x3_2a": (384, 384, K1x3[0], 1, K1x3[1]),
            "branch3x3_2b": (384, 384, K3x1[0], 1, K3x1[1]),
            "branch3x3dbl_1": (cin, 448, 1, 1, 0),
            "branch3x3dbl_2": (448, 384, 3, 1, 1),
            "branch3x3dbl_3a": (384, 384, K1x3[0], 1, K1x3[1]),
            "branch3x3dbl_3b": (384, 384, K3x1[0], 1, K3x1[1]),
            "branch_pool": (cin, 192, 1, 1, 0),
        })
        if pool not in ("avg", "max"):
            raise ValueError(pool)
        self.pool = pool

    def forward(self, x):
        mid = self.branch3x3_1(x)
        dbl = self.path(x, "branch3x3dbl_1", "branch3x3dbl_2")
        # The 2015 graph max-pools in its last block (where the paper says average).
        pooled = _avg3(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(mid), self.branch3x3_2b(mid),
            self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
            self.branch_pool(pooled),
        ], 1)


class FIDInceptionV3(nn.Module):
    """uint8 images → (pool3 B×2048, logits without bias B×1008), float32."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, "avg")
        self.Mixed_7c = BlockE(2048, "max")
        self.fc = nn.Linear(POOL3_DIM, NUM_CLASSES)

    @staticmethod
    def preprocess(images):
        """uint8 B×3×H×W → float32 B×3×299×299 in [-1, 1] (TF1 resize, then (x − 128) / 128)."""
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 B×3×H×W images, got {tuple(images.shape)} {images.dtype}")
        x = images.to(torch.float32)
        if x.shape[2:] != (INPUT_SIZE, INPUT_SIZE):
            x = resize_bilinear_tf1(x, INPUT_SIZE)
        return (x - 128.0) / 128.0

    def pool3(self, x):
        """Preprocessed input → the 2048-d global average pool."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, images):
        feats = self.pool3(self.preprocess(images))
        logits = F.linear(feats, self.fc.weight)  # IS uses the logits *without* the bias
        return feats, logits
