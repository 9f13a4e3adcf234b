"""Benchmark `sagan evaluate`: Inception feature extraction speed and the cost of the FID maths.

Measures

* images/s of feature extraction (uint8 → TF1 resize to 299 → FID Inception-v3 → pool3 + logits) on
  the CPU with ``--threads`` torch threads and, where available, on CUDA (TF32 off, as evaluate runs).
  The weights are random: speed does not depend on their values, and the real file cannot be assumed
  to be present. The first batch is a warm-up and is not counted.
* the FID computation for 2048-d statistics (``frechet_distance``: a Cholesky factor, two products,
  one symmetric eigenvalue problem), best and median of ``--repeat`` runs in a fresh process, with
  the default BLAS threads and with one BLAS thread (on a busy shared machine the single-threaded
  LAPACK is often much faster: threads that wait for each other lose their time slices);
  with ``--sqrtm``, the same for ``frechet_distance_sqrtm`` (`sagan evaluate --fid-sqrtm`: scipy.linalg.sqrtm
  of the product, as pytorch-fid computes it), on the same matrices;
* mu/sigma from ``--stats-n`` features (float64 accumulation);
* with ``--swd N``, SWD (`sagan evaluate --swd`) of N generated against 2N real random images at
  ``--imsize``: seconds feeding the pyramid/neighbourhood pass, and for the distances and the floor.

Prints a table; ``--json OUT`` also writes the numbers to OUT. Not a test: nothing is asserted.

    python benchmarks/evaluate_bench.py                    # CPU: 48 images, batch 16
    python benchmarks/evaluate_bench.py --images 2048 --cuda-batch 128 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def random_network(device):
    import torch

    from sagan_cli.metrics.inception import FIDInceptionV3

    torch.manual_seed(0)
    return FIDInceptionV3().to(device).eval().requires_grad_(False)


def extraction_speed(device_name: str, images: int, batch: int, imsize: int) -> dict:
    import torch

    from sagan_cli.metrics.features import full_float32

    device = torch.device(device_name)
    net = random_network(device)
    x = torch.randint(0, 256, (batch, 3, imsize, imsize), dtype=torch.uint8)
    batches = max(1, images // batch)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with full_float32(), torch.no_grad():
        net(x.to(device))  # warm-up: kernel selection, allocator
        sync()
        start = time.perf_counter()
        for _ in range(batches):
            net(x.to(device))
        sync()
        elapsed = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    return {"device": name, "images": batches * batch, "batch": batch, "imsize": imsize,
            "seconds": round(elapsed, 2), "img_per_s": round(batches * batch / elapsed, 2)}


def fid_timing(repeat: int, sqrtm: bool = False) -> dict:
    import numpy as np

    from sagan_cli.metrics.fid import frechet_distance, frechet_distance_sqrtm

    rng = np.random.default_rng(0)
    d = 2048
    a, b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    s1, s2 = a @ a.T / d, b @ b.T / d
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        (frechet_distance_sqrtm if sqrtm else frechet_distance)(mu1, s1, mu2, s2)
        times.append(time.perf_counter() - start)
    times.sort()
    return {"best_s": round(times[0], 2), "median_s": round(times[len(times) // 2], 2), "repeat": repeat}


def fid_timing_subprocess(repeat: int, one_thread: bool, sqrtm: bool = False) -> dict:
    """fid_timing in a fresh interpreter (no torch thread pool around), optionally with 1 BLAS thread."""
    env = dict(os.environ)
    if one_thread:
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
           f"import evaluate_bench as b; print(json.dumps(b.fid_timing({repeat}, sqrtm={sqrtm})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def stats_timing(n: int) -> dict:
    import numpy as np

    from sagan_cli.metrics.fid import statistics

    feats = np.random.default_rng(0).random((n, 2048), dtype=np.float32)
    start = time.perf_counter()
    statistics(feats)
    return {"features": n, "seconds": round(time.perf_counter() - start, 2)}


def swd_timing(n: int, imsize: int, batch: int) -> dict:
    import torch

    from sagan_cli.metrics.swd import SWDAccumulator

    images = torch.randint(0, 256, (batch, 3, imsize, imsize), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    acc = SWDAccumulator(n, 2 * n, "cpu")
    for side, count in (("generated", n), ("real", 2 * n)):
        for first in range(0, count, batch):
            acc.feed(side, images[: min(batch, count - first)])
    fed = time.perf_counter()
    acc.result()
    done = time.perf_counter()
    return {"images_per_side": n, "imsize": imsize, "feed_s": round(fed - start, 2), "distances_s": round(done - fed, 2)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=48, help="images per extraction measurement (after warm-up)")
    ap.add_argument("--batch", type=int, default=16, help="CPU batch size")
    ap.add_argument("--cuda-batch", type=int, default=128, help="CUDA batch size")
    ap.add_argument("--imsize", type=int, default=64, help="side of the input images (resized to 299)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--repeat", type=int, default=3, help="FID timing repetitions")
    ap.add_argument("--sqrtm", action="store_true", help="also time FID by scipy.linalg.sqrtm (--fid-sqrtm)")
    ap.add_argument("--stats-n", type=int, default=5000, help="features for the mu/sigma timing")
    ap.add_argument("--swd", type=int, default=0, metavar="N", help="also time SWD for N images per side (0: skip)")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON to OUT")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                          "load_avg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
              "extraction": [extraction_speed("cpu", args.images, args.batch, args.imsize)]}
    if torch.cuda.is_available():
        result["extraction"].append(extraction_speed("cuda", max(args.images, 8 * args.cuda_batch),
                                                     args.cuda_batch, args.imsize))
    result["fid_2048"] = {"default_blas_threads": fid_timing_subprocess(args.repeat, one_thread=False),
                          "one_blas_thread": fid_timing_subprocess(args.repeat, one_thread=True)}
    if args.sqrtm:
        result["fid_2048_sqrtm"] = {"default_blas_threads": fid_timing_subprocess(args.repeat, False, sqrtm=True),
                                    "one_blas_thread": fid_timing_subprocess(args.repeat, True, sqrtm=True)}
    result["statistics"] = stats_timing(args.stats_n)
    if args.swd:
        result["swd"] = swd_timing(args.swd, args.imsize, args.batch)
    if hasattr(os, "getloadavg"):
        result["machine"]["load_avg_at_end"] = list(os.getloadavg())

    rows = [(f"features, {e['device']}", f"{e['img_per_s']:.1f} img/s",
             f"{e['images']} images of {e['imsize']}px, batch {e['batch']}, {e['seconds']}s") for e in result["extraction"]]
    for part, path in (("fid_2048", ""), ("fid_2048_sqrtm", " by sqrtm")):
        for key, label in (("default_blas_threads", "default BLAS threads"), ("one_blas_thread", "1 BLAS thread")):
            f = result.get(part, {}).get(key)
            if f:
                rows.append((f"FID from 2048-d stats{path}, {label}", f"{f['best_s']:.2f} s",
                             f"best of {f['repeat']}, median {f['median_s']:.2f} s"))
    s = result["statistics"]
    rows.append(("mu/sigma (float64)", f"{s['seconds']:.2f} s", f"{s['features']} × 2048 float32 features"))
    if "swd" in result:
        w = result["swd"]
        rows.append(("SWD, CPU", f"{w['feed_s'] + w['distances_s']:.1f} s",
                     f"{w['images_per_side']} per side at {w['imsize']}px: feed {w['feed_s']} s, distances {w['distances_s']} s"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'result':>12}  details")
    for name, value, detail in rows:
        print(f"{name:<{width}}  {value:>12}  {detail}")
    m = result["machine"]
    print(f"machine: {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}, load average {m['load_avg_at_start']} → "
          f"{m.get('load_avg_at_end')}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"→ {args.json}")


if __name__ == "__main__":
    main()
