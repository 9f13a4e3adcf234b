"""Benchmark `sagan prepare lsun`: images/s on one core and on all cores, and peak memory.

Builds an LSUN-like lmdb in a temporary directory — WebP values under 40-hex keys,
photo-like content, short side 256, landscape and portrait — then runs the real CLI
(`python -m sagan_cli prepare lsun ...`) as a subprocess and measures

* images/s with ``--workers 1`` and with all cores, on ``--images`` entries, best of
  ``--repeat`` runs: "pipeline" is the tool's own clock (source opened → meta.json
  written, stored in meta.json ``last_run``), "wall" adds interpreter start-up;
* peak resident memory for ``--images`` and for ``--big`` entries (all cores): the
  main process's VmHWM, and the peak of the sum of VmRSS over it and its workers,
  both sampled from /proc every 20 ms (Linux only).

Prints a table, or JSON with ``--json``. Not a test: nothing is asserted.

    python benchmarks/prepare_bench.py                 # 2000 and 20000 images → 64 px
    python benchmarks/prepare_bench.py --json --big 0  # speed only
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNIQUE = 2000  # distinct encoded images; bigger databases repeat them under new keys


def lsun_like(i: int) -> bytes:
    """A WebP of a photo-like scene: smooth colour field, mid-frequency texture, grain, blocks."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(i)
    w, h = (341, 256) if i % 3 else (256, 384)
    low = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC)).astype(np.float32)
    mid = (rng.uniform(-40, 40, size=(h // 8, w // 8, 3)) + 128).astype(np.uint8)
    img += np.asarray(Image.fromarray(mid).resize((w, h), Image.BILINEAR)).astype(np.float32) - 128
    img += rng.normal(0, 9, size=img.shape)
    for _ in range(4):
        x0, y0 = rng.integers(0, w - 40), rng.integers(0, h - 40)
        img[y0 : y0 + rng.integers(20, 120), x0 : x0 + rng.integers(10, 80)] = rng.uniform(0, 255, 3)
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, "WEBP", quality=75)
    return buf.getvalue()


def build_lmdb(directory: Path, n: int, values: list[bytes]) -> Path:
    import lmdb

    directory.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(directory), map_size=max(1 << 26, int(n * 40_000 * 1.5)))
    with env.begin(write=True) as txn:
        for i in range(n):
            txn.put(hashlib.sha1(f"{i}".encode()).hexdigest().encode(), values[i % len(values)])
    env.close()
    return directory


def _tree_rss_kb(pid: int) -> tuple[int, int]:
    """(VmHWM of ``pid``, sum of VmRSS over ``pid`` and its descendants), in kB."""
    total, hwm, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                fields = {l.split(":")[0]: l.split()[1] for l in fh if l.startswith(("VmRSS:", "VmHWM:"))}
            total += int(fields.get("VmRSS", 0))
            if p == pid:
                hwm = int(fields.get("VmHWM", 0))
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return hwm, total


def run_prepare(lmdb_dir: Path, out: Path, imsize: int, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "sagan_cli", "prepare", "lsun", "bedroom", "--lmdb", str(lmdb_dir),
           "--imsize", str(imsize), "--workers", str(workers), "--out", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=out.parent)
    peak = {"main": 0, "tree": 0}
    done = threading.Event()

    def sample():  # /proc, not wait4's ru_maxrss: that counts the fork of this process before exec
        while not done.is_set():
            hwm, tree = _tree_rss_kb(proc.pid)
            peak["main"], peak["tree"] = max(peak["main"], hwm), max(peak["tree"], tree)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.wait()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    stderr = proc.stderr.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed ({proc.returncode}): {stderr.strip()}")
    meta = json.loads((out / "meta.json").read_text())
    pipeline = meta["last_run"]["seconds"]
    return {"images": meta["count"], "workers": workers, "wall_s": round(wall, 2), "pipeline_s": round(pipeline, 2),
            "images_per_s": round(meta["count"] / pipeline, 1), "images_per_s_wall": round(meta["count"] / wall, 1),
            "peak_rss_main_mb": round(peak["main"] / 1024, 1), "peak_rss_tree_mb": round(peak["tree"] / 1024, 1)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000, help="entries for the speed runs (default 2000)")
    ap.add_argument("--big", type=int, default=20000, help="entries for the memory run; 0 skips it (default 20000)")
    ap.add_argument("--imsize", type=int, default=64)
    ap.add_argument("--workers", type=int, default=None, help="'all cores' worker count (default: all available)")
    ap.add_argument("--repeat", type=int, default=3, help="speed runs per setting; the fastest is kept (default 3)")
    ap.add_argument("--workdir", type=Path, default=None, help="where to build the databases (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    workers = args.workers or cores
    load_before = round(os.getloadavg()[0], 2)
    work = Path(tempfile.mkdtemp(prefix="sagan-prepare-bench-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        with ProcessPoolExecutor(cores) as pool:
            values = list(pool.map(lsun_like, range(min(UNIQUE, max(args.images, args.big))), chunksize=32))
        small = build_lmdb(work / "small" / "bedroom_train_lmdb", args.images, values)
        big = build_lmdb(work / "big" / "bedroom_train_lmdb", args.big, values) if args.big else None
        setup_s = time.perf_counter() - t0
        best = lambda w: min((run_prepare(small, work / f"out-{w}", args.imsize, w) for _ in range(args.repeat)),
                             key=lambda r: r["pipeline_s"])
        runs = [best(1), best(workers)]
        if big is not None:
            runs.append(run_prepare(big, work / "out-big", args.imsize, workers))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    one, many = runs[0], runs[1]
    result = {
        "machine": {"cpu_cores": cores, "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "platform": platform.platform()},
        "source": {"format": "WebP q75 in lmdb, 40-hex keys", "short_side": 256,
                   "mean_value_kb": round(sum(map(len, values)) / len(values) / 1000, 1), "unique_values": len(values)},
        "imsize": args.imsize, "setup_s": round(setup_s, 1), "repeat": args.repeat, "load_avg_before": load_before,
        "runs": runs,
        "speedup_all_cores": round(many["images_per_s"] / one["images_per_s"], 2),
        "speedup_all_cores_wall": round(many["images_per_s_wall"] / one["images_per_s_wall"], 2),
    }
    if big is not None:
        result["rss_ratio_big_vs_small_tree"] = round(runs[2]["peak_rss_tree_mb"] / many["peak_rss_tree_mb"], 3)
        result["rss_ratio_big_vs_small_main"] = round(runs[2]["peak_rss_main_mb"] / many["peak_rss_main_mb"], 3)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"sagan prepare lsun benchmark: {result['source']['format']}, short side 256 "
          f"(mean {result['source']['mean_value_kb']} kB) → {args.imsize}px; "
          f"{cores} CPU cores, Python {result['machine']['python']}")
    print(f"{'images':>7} {'workers':>7} {'pipeline s':>10} {'images/s':>9} {'wall s':>7} {'img/s wall':>10} "
          f"{'peak RSS main':>14} {'peak RSS all procs':>19}")
    for r in runs:
        print(f"{r['images']:>7} {r['workers']:>7} {r['pipeline_s']:>10.2f} {r['images_per_s']:>9.1f} {r['wall_s']:>7.2f} "
              f"{r['images_per_s_wall']:>10.1f} {r['peak_rss_main_mb']:>11.1f} MB {r['peak_rss_tree_mb']:>16.1f} MB")
    print(f"all cores ({workers}) vs 1 core: {result['speedup_all_cores']:.2f}x pipeline, "
          f"{result['speedup_all_cores_wall']:.2f}x wall (best of {args.repeat}; load average before: {load_before})")
    if big is not None:
        print(f"peak RSS {args.big} vs {args.images} images: {result['rss_ratio_big_vs_small_main']:.2f}x (main process), "
              f"{result['rss_ratio_big_vs_small_tree']:.2f}x (all processes)")


if __name__ == "__main__":
    main()
