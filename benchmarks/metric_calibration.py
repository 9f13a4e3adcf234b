"""What a score means: the weight-free metrics of `sagan evaluate` on real images degraded in known ways.

The fidelity bench and `make demo` report the SWD ×1e3 against its real-vs-real floor and the mirror error
(docs/fidelity.md). Neither number says by itself how good an image is; this script puts them on a
scale by scoring the built-in synthetic dataset's own images after a known, measurable damage:

* ``noise σ``: Gaussian noise of standard deviation σ on the 0..255 scale added to every pixel (σ = 2 is
  under 1 % of the range, invisible at a glance);
* ``blur``: each image 2× box-downsampled and bilinearly upsampled (fine detail lost, shapes kept);
* ``halves``: the right half of every image taken from another image of the set (each half is real and
  sharp, but the two do not mirror each other: what a generator without long-range consistency draws).

Each damaged set (``--num`` images, disjoint from the real ones) is scored against ``--num`` real
images exactly as `sagan evaluate --swd --mirror -n N --num-real N` scores a generator, with the same
accumulators (metrics/swd.py, metrics/mirror.py), so the floor is the one `make demo` prints.

    python benchmarks/metric_calibration.py                      # the table
    python benchmarks/metric_calibration.py --json docs/perf/metric-calibration-cpu.json

Not a test: nothing is asserted. The table in docs/fidelity.md is this script's Markdown output of the
saved JSON (tests/test_benchmarks.py keeps them equal).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

SIGMAS = (1, 2, 4, 8)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num", type=int, default=2048, help="damaged images, and as many real ones (make demo's count)")
    p.add_argument("--count", type=int, default=6000, help="images in the synthetic dataset (make demo's)")
    p.add_argument("--seed", type=int, default=0, help="the noise's seed")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--from-json", type=Path, default=None, help="render saved results instead of measuring")
    return p.parse_args(argv)


def damaged_sets(images, seed: int):
    """(name, what, uint8 N×3×H×W) for every damage, from the uint8 ``images``."""
    import torch
    import torch.nn.functional as F

    x = images.float()
    g = torch.Generator().manual_seed(seed)
    yield "none", "the images as they are", images
    for s in SIGMAS:
        noisy = x + s * torch.randn(x.shape, generator=g)
        yield f"noise σ={s}", f"Gaussian noise, σ = {s}/255 per pixel", noisy.round().clamp(0, 255).to(torch.uint8)
    blurred = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="bilinear", align_corners=False)
    yield "blur", "2× box-downsampled, bilinearly upsampled", blurred.round().clamp(0, 255).to(torch.uint8)
    half = x.shape[-1] // 2
    other = torch.roll(images, 1, dims=0)  # image i's right half from image i-1
    halves = images.clone()
    halves[..., half:] = other[..., half:]
    yield "halves", "right half from another image", halves


def score(damaged, real) -> dict:
    """SWD (with its floor) and the mirror error of ``damaged`` against ``real``, as `evaluate` computes them."""
    from sagan_cli.metrics.mirror import MirrorAccumulator
    from sagan_cli.metrics.swd import SWDAccumulator

    swd = SWDAccumulator(len(damaged), len(real), "cpu")
    mirror = MirrorAccumulator(len(damaged), len(real), "cpu")
    for acc in (swd, mirror):
        acc.feed("generated", damaged)
        acc.feed("real", real)
    s, m = swd.result(), mirror.result()
    return {"swd": round(s["swd"], 3), "swd_floor": round(s["swd_floor"], 3), "mirror_error": round(m["mirror_error"], 5)}


def run(args) -> dict:
    import numpy as np
    import torch

    from bench_measure import environment
    from fidelity_bench import sagan

    work = Path(tempfile.mkdtemp(prefix="calibration-"))
    data = work / "synthetic-32"
    sagan("prepare", "synthetic", "--imsize", 32, "--count", args.count, "--out", data)
    images = torch.from_numpy(np.load(data / "images.npy"))
    if len(images) < 2 * args.num:
        raise SystemExit(f"--count {args.count} has too few images for --num {args.num} (needs {2 * args.num})")
    real, rest = images[: args.num], images[args.num : 2 * args.num]
    rows = [{"damage": name, "what": what, **score(d, real)} for name, what, d in damaged_sets(rest, args.seed)]
    return {"environment": environment(torch.device("cpu")),
            "settings": {"imsize": 32, "count": args.count, "num": args.num, "seed": args.seed}, "rows": rows}


def markdown(res: dict) -> str:
    s = res["settings"]
    floor = res["rows"][0]["swd_floor"]
    lines = [f"{s['num']} damaged vs {s['num']} real images of `prepare synthetic --imsize 32 --count {s['count']}` "
             f"(the counts `make demo` scores); SWD floor {floor:.2f}.", "",
             "| damage | what | SWD ×1e3 | × floor | mirror error |", "|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['damage']} | {r['what']} | {r['swd']:.2f} | {r['swd'] / r['swd_floor']:.2f}× | "
                     f"{r['mirror_error']:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from bench_measure import save_and_print

    args = parse_args(argv)
    return save_and_print(json.loads(args.from_json.read_text()) if args.from_json else run(args), args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
