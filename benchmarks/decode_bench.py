"""Benchmark torchvision against what `sagan` does today in two image paths: decoding in `prepare`, sample grids.

decode: LSUN-like pictures (``prepare_bench.lsun_like``, short side 256) written to a temporary
    directory as JPEG (quality 75) and WebP, decoded, centre-cropped and resized to ``--size`` px
    with Pillow LANCZOS (what the dataset format promises), one thread, alternated rounds, timed in
    CPU seconds of this process (wall time on shared cores counts other jobs; both are kept):
    ``pillow`` (today, ``imageops``), ``tv-decode`` / ``tv-jpeg`` (``torchvision.io.decode_image`` /
    ``decode_jpeg``, crop on the tensor, then the same LANCZOS), ``draft-1x`` / ``draft-2x`` (JPEG
    only: Pillow's ``Image.draft`` to the target size or twice it, i.e. libjpeg DCT scaling).
    Pixels are compared with ``pillow``'s. ``--workers N`` adds an end-to-end run per arm: a fresh
    interpreter without torch (as `prepare`) forks a pool as pipeline.py does and decodes every file
    in chunks of 32; a torchvision worker imports ``torchvision.io`` on its first chunk.
import: seconds and resident memory that ``import torch`` and ``import torchvision.io`` add to a
    fresh interpreter holding NumPy and Pillow (a worker, or `prepare --preview`).
grid: ``util.images.grid`` (NumPy) against ``torchvision.utils.make_grid(..., pad_value=255)``,
    64 images of 64 px and 256 of 32 px, from uint8 and from the generator's float output; pixel
    equality there and on the edge cases; ``save_image``'s quantisation against ``to_uint8``.

Prints a table; ``--json PATH`` also writes the results. Not a test: nothing is asserted.

    python benchmarks/decode_bench.py --json docs/perf/decode-cpu.json
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import numpy as np  # noqa: E402  (torch is imported where used: the end-to-end parent must not load it)
from PIL import Image  # noqa: E402

from sagan_cli.data.prepare.imageops import center_box, decode, to_square  # noqa: E402

CHUNK = 32  # entries per worker task, as LmdbSource.chunk_size


# --- inputs ------------------------------------------------------------------------------------

def make_inputs(directory: Path, n: int) -> dict[str, list[Path]]:
    """``n`` JPEGs and ``n`` WebPs of the same LSUN-like pictures under ``directory``."""
    from prepare_bench import lsun_like

    files: dict[str, list[Path]] = {"jpeg": [], "webp": []}
    for i in range(n):
        webp = lsun_like(i)
        (directory / f"{i:05d}.webp").write_bytes(webp)
        Image.open(io.BytesIO(webp)).convert("RGB").save(directory / f"{i:05d}.jpg", "JPEG", quality=75)
        files["webp"].append(directory / f"{i:05d}.webp")
        files["jpeg"].append(directory / f"{i:05d}.jpg")
    return files


# --- the arms ----------------------------------------------------------------------------------

def arm_pillow(buf: bytes, size: int):
    return to_square(decode(buf), size)


def _tv(buf: bytes, size: int, jpeg_only: bool):
    import torch
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg

    data = torch.frombuffer(bytearray(buf), dtype=torch.uint8)
    t = decode_jpeg(data, mode=ImageReadMode.RGB) if jpeg_only else decode_image(data, mode=ImageReadMode.RGB)
    left, top, right, bottom = center_box(t.shape[2], t.shape[1])
    # Pillow wants interleaved RGB: merging the three planes is cheaper than a C×H×W → H×W×C copy
    planes = [Image.fromarray(np.ascontiguousarray(c)) for c in t[:, top:bottom, left:right].numpy()]
    return to_square(Image.merge("RGB", planes), size)  # square already: only the LANCZOS resize is left


def _draft(buf: bytes, size: int, factor: int):
    img = Image.open(io.BytesIO(buf))
    img.draft("RGB", (size * factor, size * factor))  # a JPEG decodes at 1/2, 1/4, 1/8 if still ≥ this
    img.load()
    return to_square(img, size)


ARMS = {"pillow": arm_pillow,
        "tv-decode": functools.partial(_tv, jpeg_only=False), "tv-jpeg": functools.partial(_tv, jpeg_only=True),
        "draft-1x": functools.partial(_draft, factor=1), "draft-2x": functools.partial(_draft, factor=2)}
FORMAT_ARMS = {"jpeg": list(ARMS), "webp": ["pillow", "tv-decode"]}


def pixel_diff(ref, out) -> dict:
    d = np.abs(ref.astype(np.int16) - out.astype(np.int16))
    return {"identical": bool(d.max() == 0), "max_abs": int(d.max()), "mean_abs": round(float(d.mean()), 3),
            "values_differing": round(float((d > 0).mean()), 4)}


def _alternated(fns: dict, bufs: list[bytes], rounds: int) -> dict[str, dict[str, list[float]]]:
    """CPU and wall seconds per pass over ``bufs`` of each fn, the rounds alternated. CPU time (this
    process, one thread) is what the comparison uses: on shared cores wall time counts other jobs."""
    times = {name: {"cpu": [], "wall": []} for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            for b in bufs:
                fn(b)
            times[name]["cpu"].append(time.process_time() - c0)
            times[name]["wall"].append(time.perf_counter() - w0)
    return times


def _summary(ts: dict, ref: dict, n: int) -> dict:
    cpu = statistics.median(ts["cpu"])
    return {"images": n, "us_per_image": round(cpu / n * 1e6, 1), "us_per_image_best": round(min(ts["cpu"]) / n * 1e6, 1),
            "wall_us_per_image": round(statistics.median(ts["wall"]) / n * 1e6, 1), "images_per_cpu_s": round(n / cpu, 1),
            "cpu_s": [round(t, 4) for t in ts["cpu"]],
            # per round, against pillow's CPU time in that round, then the median
            "speedup_vs_pillow": round(statistics.median(r / t for r, t in zip(ref["cpu"], ts["cpu"])), 3)}


def bench_decode(files: dict[str, list[Path]], size: int, rounds: int) -> dict:
    import torch
    from torchvision.io import ImageReadMode, decode_image

    torch.set_num_threads(1)  # one core per worker, as in the pool
    only = {"pillow": lambda b: np.asarray(decode(b).convert("RGB")),  # just the decode: where the time goes
            "tv-decode": lambda b: decode_image(torch.frombuffer(bytearray(b), dtype=torch.uint8),
                                                mode=ImageReadMode.RGB).permute(1, 2, 0).numpy()}
    results = {}
    for fmt, arms in FORMAT_ARMS.items():
        bufs = [p.read_bytes() for p in files[fmt]]
        ref = np.stack([arm_pillow(b, size) for b in bufs])
        diffs = {name: pixel_diff(ref, np.stack([ARMS[name](b, size) for b in bufs])) for name in arms}  # warms up
        times = _alternated({name: functools.partial(ARMS[name], size=size) for name in arms}, bufs, rounds)
        row = {name: {"pixels_vs_pillow": diffs[name], **_summary(times[name], times["pillow"], len(bufs))}
               for name in arms}
        same = all(np.array_equal(only["pillow"](b), only["tv-decode"](b)) for b in bufs)
        times = _alternated(only, bufs, rounds)
        row["decode_only"] = {"identical": same, **{name: _summary(ts, times["pillow"], len(bufs))
                                                    for name, ts in times.items()}}
        results[fmt] = row
    return results


def break_even(decode: dict, imports: dict) -> dict:
    """Images a worker must decode before torchvision's per-image saving (pillow's CPU time less the
    same over the paired speed-up) repays the CPU time of its import."""
    cost = imports["torch_plus_torchvision_io_cpu_s"]
    out = {}
    for fmt, row in decode.items():
        saved_us = row["pillow"]["us_per_image"] * (1 - 1 / row["tv-decode"]["speedup_vs_pillow"])
        out[fmt] = {"saved_us_per_image": round(saved_us, 1),
                    "images_per_worker": round(cost / (saved_us * 1e-6)) if saved_us > 0 else None}
    return out


# --- end to end: a forked pool, torchvision imported in each worker ------------------------------

def _decode_chunk(arm: str, paths: list[str], size: int) -> int:
    fn = ARMS[arm]
    if arm.startswith("tv"):
        import torch

        torch.set_num_threads(1)
    for p in paths:
        fn(Path(p).read_bytes(), size)
    return len(paths)


def e2e_child(arm: str, directory: str, size: int, workers: int) -> None:
    """Runs in a fresh interpreter: fork ``workers`` processes (torch not imported here), decode all files."""
    import multiprocessing
    import resource
    from concurrent.futures import ProcessPoolExecutor

    assert "torch" not in sys.modules
    paths = sorted(str(p) for p in Path(directory).iterdir() if p.suffix in (".jpg", ".webp"))
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        done = sum(pool.map(_decode_chunk, [arm] * len(chunks), chunks, [size] * len(chunks)))
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, reaped at shutdown
    print(json.dumps({"images": done, "seconds": time.perf_counter() - t0, "cpu": kids.ru_utime + kids.ru_stime,
                      "max_rss_mib": kids.ru_maxrss / 1024}))


def bench_e2e(directory: Path, size: int, workers: int, rounds: int) -> dict:
    runs: dict[str, list[dict]] = {"pillow": [], "tv-decode": []}
    for _ in range(rounds):
        for arm in runs:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--e2e-child", arm, str(directory),
                   "--size", str(size), "--workers", str(workers)]
            runs[arm].append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    out = {}
    for arm, rs in runs.items():
        wall, cpu = statistics.median(r["seconds"] for r in rs), statistics.median(r["cpu"] for r in rs)
        out[arm] = {"workers": workers, "images": rs[0]["images"], "wall_s": round(wall, 3),
                    "workers_cpu_s": round(cpu, 3), "images_per_s": round(rs[0]["images"] / wall, 1),
                    "worker_max_rss_mib": round(max(r["max_rss_mib"] for r in rs)),
                    "wall_s_all": [round(r["seconds"], 3) for r in rs]}
    return out


# --- import cost ---------------------------------------------------------------------------------

_IMPORT_PROBE = r"""
import json, time
def rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:")) / 1024
t0, c0 = time.perf_counter(), time.process_time(); import numpy, PIL.Image
t1, c1, r1 = time.perf_counter(), time.process_time(), rss(); import torch
t2, c2, r2 = time.perf_counter(), time.process_time(), rss(); import torchvision.io
t3, c3, r3 = time.perf_counter(), time.process_time(), rss()
print(json.dumps({"numpy_pillow_s": t1 - t0, "torch_s": t2 - t1, "torchvision_io_s": t3 - t2,
                  "torch_cpu_s": c2 - c1, "torchvision_io_cpu_s": c3 - c2,
                  "rss_numpy_pillow_mib": r1, "torch_rss_mib": r2 - r1, "torchvision_io_rss_mib": r3 - r2}))
"""


def bench_import(runs: int) -> dict:
    rows = [json.loads(subprocess.run([sys.executable, "-c", _IMPORT_PROBE], check=True, capture_output=True,
                                      text=True).stdout) for _ in range(runs)]
    both = [r["torch_s"] + r["torchvision_io_s"] for r in rows]
    return {**{k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}, "runs": runs,
            "torch_plus_torchvision_io_s": round(statistics.median(both), 3),
            "torch_plus_torchvision_io_cpu_s": round(statistics.median(
                r["torch_cpu_s"] + r["torchvision_io_cpu_s"] for r in rows), 3),
            "torch_plus_torchvision_io_s_all": [round(t, 3) for t in both]}


# --- grids ---------------------------------------------------------------------------------------

def bench_grid(repeat: int) -> dict:
    import torch
    from torchvision.utils import make_grid, save_image

    from sagan_cli.util.images import grid, to_uint8

    torch.set_num_threads(1)

    def us(fn, number):  # best of ``repeat``, CPU µs per call
        return round(min(timeit.repeat(fn, number=number, repeat=repeat, timer=time.process_time)) / number * 1e6, 1)

    def tv_grid(nchw, nrow):
        return make_grid(nchw, nrow=nrow, padding=2, pad_value=255).permute(1, 2, 0).contiguous().numpy()

    def tv_from_float(x, nrow):  # the quantisation of to_uint8, kept N×C×H×W for make_grid
        y = ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
        return tv_grid(y, nrow)

    def png(image):  # what save_png does with the grid next, for scale
        Image.fromarray(image).save(io.BytesIO(), format="PNG")

    rng = np.random.default_rng(0)
    cases = {}
    for b, s in ((64, 64), (256, 32)):
        x = torch.from_numpy(rng.uniform(-1, 1, (b, 3, s, s)).astype(np.float32))
        nhwc = to_uint8(x)
        nchw = torch.from_numpy(nhwc).permute(0, 3, 1, 2).contiguous()
        same = bool(np.array_equal(grid(nhwc, nrow=8), tv_grid(nchw, 8))) and \
            bool(np.array_equal(grid(to_uint8(x), nrow=8), tv_from_float(x, 8)))
        number = 200 if b * s * s <= 300_000 else 50
        cases[f"{b}x{s}px"] = {
            "identical_pixels": same, "numpy_grid_us": us(lambda: grid(nhwc, nrow=8), number),
            "make_grid_us": us(lambda: tv_grid(nchw, 8), number),
            "from_float_numpy_grid_us": us(lambda: grid(to_uint8(x), nrow=8), number),
            "from_float_make_grid_us": us(lambda: tv_from_float(x, 8), number),
            "png_encode_us": us(lambda: png(grid(nhwc, nrow=8)), 10)}
    edges = {}
    for label, b, nrow in (("one image", 1, 8), ("3 images, nrow 8", 3, 8), ("16 images, default nrow", 16, None),
                           ("10 images, nrow 4", 10, 4)):
        nhwc = rng.integers(0, 256, (b, 16, 16, 3), dtype=np.uint8)
        ours = grid(nhwc, nrow=nrow)
        kw = {} if nrow is None else {"nrow": nrow}
        theirs = make_grid(torch.from_numpy(nhwc).permute(0, 3, 1, 2), padding=2, pad_value=255, **kw)
        theirs = theirs.permute(1, 2, 0).numpy()
        edges[label] = {"numpy_grid_shape": list(ours.shape), "make_grid_shape": list(theirs.shape),
                        "identical": bool(ours.shape == theirs.shape and np.array_equal(ours, theirs))}
    # save_image quantises a [0, 1] float as floor(255 x + 0.5); to_uint8 rounds 127.5 (x + 1) half to even
    x = torch.from_numpy(rng.uniform(-1, 1, (64, 3, 32, 32)).astype(np.float32))
    x[0, 0, 0, :8] = torch.tensor([(2 * k + 1) / 255 - 1 for k in range(8)])  # next to .5 once scaled by 127.5
    buf = io.BytesIO()
    save_image(x.add(1).div(2), buf, format="png", nrow=8, padding=2, pad_value=1.0)
    theirs = np.asarray(Image.open(buf).convert("RGB"))
    ours = grid(to_uint8(x), nrow=8)
    diff = ours.astype(np.int16) - theirs.astype(np.int16)
    save = {"shape_equal": theirs.shape == ours.shape, "values_differing": int((diff != 0).sum()),
            "max_abs": int(np.abs(diff).max()), "values": int(diff.size)}
    return {"timings": cases, "edge_cases": edges, "save_image_vs_to_uint8_grid": save}


# --- report --------------------------------------------------------------------------------------

def bundled_codecs() -> dict:
    """The libjpeg-turbo and libwebp each wheel ships (Pillow's and torchvision's are separate builds)."""
    import ctypes
    import re
    import sysconfig

    out, site = {}, Path(sysconfig.get_paths()["purelib"])
    for wheel in ("pillow", "torchvision"):
        for lib in sorted(site.glob(f"{wheel}.libs/libjpeg*")):
            m = re.search(rb"libjpeg-turbo version ([0-9.]+)", lib.read_bytes())
            out[f"{wheel}_libjpeg_turbo"] = m.group(1).decode() if m else "?"
        for lib in sorted(site.glob(f"{wheel}.libs/libwebp[.-]*")):
            v = ctypes.CDLL(str(lib)).WebPGetDecoderVersion()
            out[f"{wheel}_libwebp"] = f"{v >> 16}.{(v >> 8) & 255}.{v & 255}"
    return out


def machine() -> dict:
    import PIL
    import torch
    import torchvision

    from bench_measure import cpu_name, git_rev

    return {"cpu": cpu_name(), "nproc": os.cpu_count(), "platform": platform.platform(), "git": git_rev(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "pillow": PIL.__version__, **bundled_codecs(), "load_avg_at_start": list(os.getloadavg())}


def print_report(res: dict) -> None:
    m = res["machine"]
    print(f"{m['cpu']}, {m['nproc']} CPUs; torch {m['torch']}, torchvision {m['torchvision']}, Pillow {m['pillow']}")
    print(f"\ndecode + crop + LANCZOS → {res['size']} px, one thread, per image, median of {res['rounds']} rounds "
          "(vs pillow: median of the per-round CPU-time ratios)")
    print(f"{'format':6} {'arm':10} {'CPU µs':>8} {'best':>8} {'wall µs':>8} {'vs pillow':>9}  pixels vs pillow")
    for fmt, row in res["decode"].items():
        for name, r in row.items():
            if name == "decode_only":
                continue
            px = r["pixels_vs_pillow"]
            same = "identical" if px["identical"] else \
                f"max |d| {px['max_abs']}, mean |d| {px['mean_abs']}, {px['values_differing']:.1%} of values"
            print(f"{fmt:6} {name:10} {r['us_per_image']:8.1f} {r['us_per_image_best']:8.1f} {r['wall_us_per_image']:8.1f} "
                  f"{r['speedup_vs_pillow']:8.2f}x  {same}")
    for fmt, row in res["decode"].items():
        r = row["decode_only"]
        print(f"  decode only, {fmt}: pillow {r['pillow']['us_per_image']:.1f} µs, tv-decode "
              f"{r['tv-decode']['us_per_image']:.1f} µs ({r['tv-decode']['speedup_vs_pillow']:.2f}x), "
              f"identical={r['identical']}")
    if res.get("end_to_end"):
        print("\nend to end, forked pool, torchvision imported in each worker")
        for arm, r in res["end_to_end"].items():
            print(f"  {arm:10} {r['workers']} workers, {r['images']} images: {r['wall_s']:.3f} s wall "
                  f"({r['images_per_s']:.1f} img/s), {r['workers_cpu_s']:.3f} s CPU in the workers, "
                  f"largest worker {r['worker_max_rss_mib']} MiB")
    imp = res["import"]
    print(f"\nimport in a fresh interpreter (median of {imp['runs']}): numpy+PIL {imp['numpy_pillow_s']:.3f} s; torch "
          f"+{imp['torch_s']:.3f} s +{imp['torch_rss_mib']:.0f} MiB; torchvision.io +{imp['torchvision_io_s']:.3f} s "
          f"+{imp['torchvision_io_rss_mib']:.0f} MiB (both: {imp['torch_plus_torchvision_io_cpu_s']:.3f} s CPU)")
    for fmt, r in res.get("break_even", {}).items():
        n = r["images_per_worker"]
        print(f"  {fmt}: tv-decode saves {r['saved_us_per_image']:.1f} µs/image; "
              + (f"repays the import after {n} images per worker" if n else "never repays the import"))
    print("\ngrid (best of repeats, CPU µs, one thread; from float = with the quantisation of the generator's output)")
    for case, r in {**res["grid"]["timings"], **res["grid"]["edge_cases"]}.items():
        print(f"  {case:24} " + ", ".join(f"{k.removesuffix('_us')} {v}" for k, v in r.items()))
    sv = res["grid"]["save_image_vs_to_uint8_grid"]
    print(f"  save_image vs grid(to_uint8): {sv['values_differing']} of {sv['values']} values differ "
          f"(max |d| {sv['max_abs']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=300, help="pictures per format (default 300)")
    ap.add_argument("--size", type=int, default=64, help="output side in px (default 64)")
    ap.add_argument("--rounds", type=int, default=5, help="alternated timing rounds (default 5)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                    help="pool size of the end-to-end run, 0 to skip it (default: all CPUs)")
    ap.add_argument("--import-runs", type=int, default=5)
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    ap.add_argument("--e2e-child", nargs=2, metavar=("ARM", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.e2e_child:
        e2e_child(args.e2e_child[0], args.e2e_child[1], args.size, args.workers)
        return
    res: dict = {"size": args.size, "rounds": args.rounds}
    res["import"] = bench_import(args.import_runs)  # first, before this process loads torch
    res["machine"] = machine()
    with tempfile.TemporaryDirectory(prefix="decode-bench-") as tmp:
        files = make_inputs(Path(tmp), args.images)
        res["inputs"] = {fmt: {"files": len(ps), "mean_bytes": round(sum(p.stat().st_size for p in ps) / len(ps))}
                         for fmt, ps in files.items()}
        res["decode"] = bench_decode(files, args.size, args.rounds)
        res["break_even"] = break_even(res["decode"], res["import"])
        if args.workers > 0:
            res["end_to_end"] = bench_e2e(Path(tmp), args.size, args.workers, max(1, args.rounds // 2 + 1))
    res["grid"] = bench_grid(repeat=max(3, args.rounds))
    res["machine"]["load_avg_at_end"] = list(os.getloadavg())
    print_report(res)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
