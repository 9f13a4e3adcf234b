"""The multi-scale sliced Wasserstein distance (SWD) of Karras et al. 2018, computed from the images.

T. Karras, T. Aila, S. Laine, J. Lehtinen, "Progressive Growing of GANs for Improved Quality, Stability,
and Variation", ICLR 2018, Appendix D; the protocol follows their metrics/sliced_wasserstein.py
(github.com/tkarras/progressive_growing_of_gans), written anew here in torch so that it runs where the
images are (CPU or GPU) with bounded memory. The steps (docs/evaluate.md states them for users):

1. uint8 RGB images as float32 on the 0..255 scale; a Laplacian pyramid from the image size down to
   16 px (``resolutions``): ``pyr_down`` filters with the 5×5 binomial kernel [1,4,6,4,1]ᵀ[1,4,6,4,1]/256,
   mirror boundary (the edge pixel is not repeated), then keeps every second pixel; a level is the
   Gaussian level minus ``pyr_up`` of the next (zeros inserted, the kernel ×4); the 16-px level is kept as
   it is, so the levels add back up to the image exactly (``reconstruct``);
2. per level, 128 random 7×7 neighbourhoods per image (centres ≥ 3 px from every border): 147-d descriptors;
3. each set of descriptors normalised per colour channel by its own mean and (population) std;
4. per level, 4 repeats × 128 random unit directions: both sets projected, each projection sorted, the
   mean absolute difference of the sorted values, averaged over the directions; reported ×1e3.

Equal descriptor counts are needed for step 4: ``SWDAccumulator`` takes the same number of images, n, on
each side, a fixed random subset of the larger side, and a second, disjoint set of n real images for
the real-vs-real floor. Descriptors are stored as float16 on the CPU (37.6 KB per image and level);
their normalisation statistics come from the float32 values. Random numbers come from NumPy
Generators seeded from ``SEED``, so the result does not depend on the device or the batch size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

NHOOD = 7  # neighbourhood side
NHOODS_PER_IMAGE = 128
DIR_REPEATS, DIRS_PER_REPEAT = 4, 128
MIN_RES = 16  # the coarsest level (table.SWD_MIN_SIZE)
MAX_IMAGES = 16384  # images per side at most, ProGAN's count (table.SWD_MAX_IMAGES)
SEED = 0
SCALE = 1e3
STORE = torch.float16  # descriptor storage
COARSE_OFFSET = 128.0  # subtracted from the 16-px (Gaussian, 0..255) level before float16 storage
PROJECTION_BYTES = 512 << 20  # working memory of the projections of one chunk of directions
MIN_DIRS = 32  # directions per chunk at least (more memory for 16384 images: ~1 GB at 4·32·2M float32)
_TAPS = (1.0, 4.0, 6.0, 4.0, 1.0)


def binomial_filter(device=None) -> torch.Tensor:
    """The 5×5 binomial filter (its taps sum to 1)."""
    k = torch.tensor(_TAPS, dtype=torch.float32, device=device)
    return torch.outer(k, k) / 256.0


def _filter(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """Per-channel 5×5 filtering with mirror boundary (torch's 'reflect' = scipy.ndimage's 'mirror')."""
    c = x.shape[1]
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    return F.conv2d(padded, weight.expand(c, 1, 5, 5), stride=stride, groups=c)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Filter, then every second pixel (stride 2 computes exactly those outputs): B×C×H×W → ⌈H/2⌉×⌈W/2⌉."""
    return _filter(x, binomial_filter(x.device), 2)


def pyr_up(x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Zeros between the pixels, then filter with 4× the kernel; cropped to ``size`` (default 2H×2W)."""
    b, c, h, w = x.shape
    up = x.new_zeros((b, c, 2 * h, 2 * w))
    up[:, :, ::2, ::2] = x
    out = _filter(up, 4.0 * binomial_filter(x.device), 1)
    return out if size is None else out[:, :, : size[0], : size[1]]


def resolutions(size: int) -> list[int]:
    """The pyramid's levels for images of ``size`` px: size, size/2, ... while at least 16."""
    out = []
    while size >= MIN_RES:
        out.append(size)
        size //= 2
    return out


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Float B×C×H×W → ``levels`` band-pass levels, finest first; the last is the Gaussian level itself."""
    gauss = [x]
    for _ in range(levels - 1):
        gauss.append(pyr_down(gauss[-1]))
    return [g - pyr_up(nxt, g.shape[-2:]) for g, nxt in zip(gauss, gauss[1:])] + [gauss[-1]]


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    x = pyramid[-1]
    for level in pyramid[-2::-1]:
        x = pyr_up(x, level.shape[-2:]) + level
    return x


def random_centres(rng: np.random.Generator, images: int, size: int) -> np.ndarray:
    """images × 128 × (y, x) neighbourhood centres, uniform among positions ≥ 3 px from the border."""
    half = NHOOD // 2
    return rng.integers(half, size - half, size=(images, NHOODS_PER_IMAGE, 2), dtype=np.int16)


def neighbourhoods(level: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """B×C×H×W level, B×K×2 centres (y, x) → (B·K)×C×7×7 neighbourhoods (image-major)."""
    b, c = level.shape[:2]
    k = centres.shape[1]
    offsets = torch.arange(-(NHOOD // 2), NHOOD // 2 + 1, device=level.device)
    y = (centres[..., 0].reshape(b * k, 1, 1, 1) + offsets.view(1, 1, NHOOD, 1))
    x = (centres[..., 1].reshape(b * k, 1, 1, 1) + offsets.view(1, 1, 1, NHOOD))
    img = torch.arange(b, device=level.device).repeat_interleave(k).view(b * k, 1, 1, 1)
    chan = torch.arange(c, device=level.device).view(1, c, 1, 1)
    return level[img, chan, y, x]


def random_directions(rng: np.random.Generator, dim: int = 3 * NHOOD * NHOOD) -> np.ndarray:
    """dim × (4·128) unit directions, drawn as 4 repeats of 128 Gaussian vectors normalised to length 1."""
    out = []
    for _ in range(DIR_REPEATS):
        d = rng.standard_normal((dim, DIRS_PER_REPEAT))
        out.append(d / np.sqrt(np.sum(d * d, axis=0, keepdims=True)))
    return np.concatenate(out, axis=1).astype(np.float32)


def sorted_projections(desc: torch.Tensor, dirs: torch.Tensor, mean: torch.Tensor | None = None,
                       std: torch.Tensor | None = None, rows: int = 1 << 16) -> torch.Tensor:
    """Each direction's sorted projections of the (normalised) descriptors: N×D, D×K → K×N float32.

    ``desc`` may be float16; it is converted ``rows`` at a time on the directions' device. The
    normalisation (x − mean) / std is folded into the directions: x·(d/std) − (mean/std)·d. On the CPU
    NumPy sorts (its vectorised sort is ~10× faster there than torch.sort), elsewhere torch does.
    """
    if std is not None:
        dirs = dirs / std[:, None]
    n, device = desc.shape[0], dirs.device
    along = dirs.T.contiguous()
    out = torch.empty((dirs.shape[1], n), dtype=torch.float32, device=device)
    buf = torch.empty((min(rows, n), desc.shape[1]), dtype=torch.float32, device=device)
    part = torch.empty((dirs.shape[1], min(rows, n)), dtype=torch.float32, device=device)
    for start in range(0, n, rows):
        m = min(rows, n - start)
        buf[:m].copy_(desc[start : start + m])
        if m == part.shape[1]:  # products into a K×rows block, copied as contiguous row segments
            out[:, start : start + m] = torch.mm(along, buf.T, out=part)
        else:
            out[:, start : start + m] = torch.mm(along, buf[:m].T)
    if mean is not None:
        out -= (mean @ dirs)[:, None]
    if device.type == "cpu":
        out.numpy().sort(axis=1)
        return out
    return torch.sort(out, dim=1).values


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, dirs: torch.Tensor) -> float:
    """Mean over the directions of the mean |sorted projection of a − sorted projection of b| (a, b: N×D)."""
    if a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = sorted_projections(a, dirs) - sorted_projections(b, dirs)
    return float(diff.abs().mean(dim=1).double().mean())


class _Set:
    """The descriptors of n chosen images of one side, per level: float16 rows, float64 channel sums."""

    def __init__(self, n: int, seed_key: int):
        self.n, self.key = n, seed_key
        self.store: list[torch.Tensor] = []
        self.centres: list[np.ndarray] = []
        self.sums: list[torch.Tensor] = []  # per level: 2×3, each channel's sum and sum of squares
        self.counts: list[int] = []  # per level: values per channel so far

    def allocate(self, levels: list[int]) -> None:
        for i, res in enumerate(levels):
            self.store.append(torch.empty((self.n * NHOODS_PER_IMAGE, 3 * NHOOD * NHOOD), dtype=STORE))
            self.centres.append(random_centres(np.random.default_rng([SEED, 1, self.key, i]), self.n, res))
            self.sums.append(torch.zeros((2, 3), dtype=torch.float64))
            self.counts.append(0)

    def add(self, pyramid: list[torch.Tensor], slots: np.ndarray) -> None:
        """The neighbourhoods of the pyramid's images (one per slot, consecutive slots)."""
        first, m = int(slots[0]), len(slots)
        rows = slice(first * NHOODS_PER_IMAGE, (first + m) * NHOODS_PER_IMAGE)
        for i, level in enumerate(pyramid):
            centres = torch.from_numpy(self.centres[i][first : first + m].astype(np.int64)).to(level.device)
            d = neighbourhoods(level, centres)
            if i == len(pyramid) - 1:
                d = d - COARSE_OFFSET
            per_channel = d.transpose(0, 1).reshape(3, -1)  # float32 sums per batch, float64 across batches
            self.sums[i] += torch.stack([per_channel.sum(dim=1), (per_channel * per_channel).sum(dim=1)]).double().cpu()
            self.counts[i] += per_channel.shape[1]
            self.store[i][rows] = d.reshape(d.shape[0], -1).to(STORE).cpu()

    def normalisation(self, i: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-component mean and std (each channel's, repeated over its 49 pixels); std 0 counts as 1."""
        total, squares = self.sums[i]
        mean = total / self.counts[i]
        std = (squares / self.counts[i] - mean * mean).clamp(min=0).sqrt()
        std = torch.where(std > 0, std, torch.ones_like(std))
        spread = NHOOD * NHOOD
        return (mean.float().repeat_interleave(spread).to(device), std.float().repeat_interleave(spread).to(device))


class SWDAccumulator:
    """Fed both sides' uint8 batches (``feed``), then ``result()``: SWD and its real-vs-real floor ×1e3.

    n = min(generated, real // 2, 16384) images per side: a fixed random subset of the generated images
    (all when there are n), and two disjoint fixed random sets of n real ones, "real" (compared with the
    generated set) and "floor" (compared with "real"). Images of a side may arrive in any batch sizes.
    """

    def __init__(self, num_gen: int, num_real: int, device, max_images: int = MAX_IMAGES):
        self.num_gen, self.num_real, self.device = num_gen, num_real, torch.device(device)
        self.n = n = min(num_gen, num_real // 2, max_images)
        if n < 2:
            raise ValueError(f"SWD needs at least 2 generated and 4 real images, got {num_gen} and {num_real}")
        rng = np.random.default_rng([SEED, 0])
        gen = np.sort(rng.choice(num_gen, n, replace=False))
        perm = rng.permutation(num_real)
        real, floor = np.sort(perm[:n]), np.sort(perm[n : 2 * n])
        self.sets = {"generated": _Set(n, 0), "real": _Set(n, 1), "floor": _Set(n, 2)}
        # per side: for each image of its stream, which of its sets takes it (-1: none) and at which slot
        self._sides = {"generated": self._routing(num_gen, [gen]), "real": self._routing(num_real, [real, floor])}
        self._seen = {"generated": 0, "real": 0}
        self._sets_of = {"generated": ["generated"], "real": ["real", "floor"]}
        self.size: tuple[int, int] | None = None
        self.levels: list[int] = []

    @staticmethod
    def _routing(count: int, picks: list[np.ndarray]):
        owner, slot = np.full(count, -1, np.int8), np.full(count, -1, np.int64)
        for k, p in enumerate(picks):
            owner[p], slot[p] = k, np.arange(len(p))
        return owner, slot

    def feed(self, side: str, batch: torch.Tensor) -> None:
        """The next images of ``side`` ("generated" or "real"): a uint8 B×3×H×W tensor."""
        owner, slot = self._sides[side]
        start = self._seen[side]
        stop = start + batch.shape[0]
        if stop > len(owner):
            raise RuntimeError(f"SWD: more {side} images than the {len(owner)} announced")
        self._seen[side] = stop
        owners = owner[start:stop]
        if (owners < 0).all():
            return
        size = tuple(batch.shape[-2:])
        if self.size is None:
            if min(size) < MIN_RES:
                raise ValueError(f"SWD needs images of at least {MIN_RES} px a side, got {size[1]}x{size[0]}")
            self.size, self.levels = size, resolutions(min(size))
            for s in self.sets.values():
                s.allocate(self.levels)
        elif size != self.size:
            from sagan_cli.util.errors import SaganError

            raise SaganError(f"SWD compares images of one size: {side} images of {size[1]}x{size[0]} px after "
                             f"{self.size[1]}x{self.size[0]} px ones")
        taken = np.nonzero(owners >= 0)[0]
        with torch.no_grad():
            x = batch[torch.from_numpy(taken)].to(self.device).float()
            pyramid = laplacian_pyramid(x, len(self.levels))
            for k, name in enumerate(self._sets_of[side]):
                local = np.nonzero(owners[taken] == k)[0]  # positions in ``taken``
                if len(local):
                    index = torch.from_numpy(local).to(self.device)
                    self.sets[name].add([level[index] for level in pyramid], slot[start + taken[local]])

    def result(self) -> dict:
        """{"swd": avg, "swd_<res>": ..., "swd_floor": avg, "swd_floor_<res>": ..., "swd_images": n}."""
        for side, seen in self._seen.items():
            if seen != len(self._sides[side][0]):
                raise RuntimeError(f"SWD: {seen} {side} images fed, {len(self._sides[side][0])} announced")
        main, floor = {}, {}
        with torch.no_grad():
            for i, res in enumerate(self.levels):
                main[res], floor[res] = (SCALE * v for v in self._level(i))
        out = {"swd": float(np.mean(list(main.values())))}
        out.update({f"swd_{res}": v for res, v in main.items()})
        out["swd_floor"] = float(np.mean(list(floor.values())))
        out.update({f"swd_floor_{res}": v for res, v in floor.items()})
        out["swd_images"] = self.n
        for s in self.sets.values():
            s.store.clear()
        return out

    def _level(self, i: int) -> tuple[float, float]:
        """SWD(generated, real) and SWD(real, floor) at level i: the same directions for both."""
        dirs_all = torch.from_numpy(random_directions(np.random.default_rng([SEED, 2, i]))).to(self.device)
        sets = [self.sets[name] for name in ("generated", "real", "floor")]
        norms = [s.normalisation(i, self.device) for s in sets]
        stores = [s.store[i].to(self.device) for s in sets]  # one transfer per level, not per direction chunk
        rows = self.n * NHOODS_PER_IMAGE
        # alive at once, K×N: the real set's sorted float32 projections and another set's (on CUDA also
        # torch.sort's values and int64 indices); at least MIN_DIRS directions a chunk, as each chunk reads
        # every descriptor of the three sets once
        step = min(dirs_all.shape[1], max(MIN_DIRS, PROJECTION_BYTES // (rows * 4 * 4)))
        main = floor = 0.0
        for j in range(0, dirs_all.shape[1], step):
            dirs = dirs_all[:, j : j + step]
            r = sorted_projections(stores[1], dirs, *norms[1])
            g = sorted_projections(stores[0], dirs, *norms[0])
            main += float(g.sub_(r).abs_().mean(dim=1).double().sum())
            del g
            f = sorted_projections(stores[2], dirs, *norms[2])
            floor += float(f.sub_(r).abs_().mean(dim=1).double().sum())
            del f, r
        return main / dirs_all.shape[1], floor / dirs_all.shape[1]

    def protocol(self) -> str:
        levels = ", ".join(f"{r}" for r in self.levels)
        return (f"Karras et al. 2018 (ProGAN): Laplacian pyramid levels {levels} px (5x5 binomial filter, mirror "
                f"boundary), {NHOODS_PER_IMAGE} random {NHOOD}x{NHOOD} neighbourhoods per image and level, each set "
                f"normalised per colour channel by its own mean and std, {DIR_REPEATS} repeats x {DIRS_PER_REPEAT} "
                f"random unit directions, sorted projections, mean |difference|, x1e3; {self.n} images per side: "
                f"{self.n} of {self.num_gen} generated vs {self.n} of {self.num_real} real, floor: those {self.n} "
                f"real vs {self.n} other real images; seed {SEED}; descriptors stored as float16")
