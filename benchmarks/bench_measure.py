"""train_bench's measurements: the environment, FLOPs and matmul peaks, memory, alternated timing, host syncs.

Kept apart from the arms and the command line (train_bench.py) and the tables (bench_report.py).
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(dev) -> str:
    import torch

    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return cpu_name()


def git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(dev) -> dict:
    import torch

    env = {
        "device": str(dev),
        "device_name": device_name(dev),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "git": git_rev(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    if hasattr(os, "getloadavg"):
        env["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    if dev.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def forward_flops_per_image(G, D, z_dim: int, device, batch: int = 2) -> dict:
    """FLOPs of one G and one D forward per image (explicit attention in both implementations)."""
    import torch

    from sagan_cli.models import attention_layers

    blocks = attention_layers(G, D).values() if hasattr(G, "attn") else ()
    saved = [(b, b.impl, b.onednn) for b in blocks]
    for b in blocks:
        b.impl, b.onednn = "explicit", False  # bmm, which the counter knows
    try:
        with torch.no_grad():
            z = torch.randn(batch, z_dim, device=device)
            g = count_flops(lambda: G(z))
            x = torch.randn(batch, 3, G_imsize(G, z), G_imsize(G, z), device=device)
            d = count_flops(lambda: D(x))
    finally:
        for b, impl, onednn in saved:
            b.impl, b.onednn = impl, onednn
    return {"G": g // batch, "D": d // batch}


def G_imsize(G, z) -> int:
    import torch

    with torch.no_grad():
        return int(G(z[:1].repeat(2, 1)).shape[-1])


def _best_rate(fn, flops: float, reps: int, device) -> float:
    fn()
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return flops / best


def matmul_peaks(device, quick: bool) -> dict:
    """Best FLOP/s of large matrix products on ``device``: the practical ceiling to compare with.

    ``fp32_matmul`` is ``torch.matmul`` (the BLAS: MKL on x86 CPUs, cuBLAS on CUDA).
    On the CPU also ``fp32_conv1x1``: the same product as a 1×1 convolution over a
    channels_last batch, which runs in oneDNN; on AMD CPUs MKL takes its AVX2 code path
    while oneDNN uses AVX-512, so this is the higher and the truer ceiling there.
    On CUDA also ``bf16_matmul`` (the dtype sagan trains in there).
    """
    import torch

    cuda = device.type == "cuda"
    n = 256 if quick else (8192 if cuda else 2048)
    reps = 2 if quick else (20 if cuda else 10)
    out = {}
    for name, dtype in (("fp32_matmul", torch.float32),) + ((("bf16_matmul", torch.bfloat16),) if cuda else ()):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        out[name] = {"n": n, "flop_per_s": _best_rate(lambda: a @ b, 2 * n**3, reps, device)}
    if not cuda:
        c, hw, batch = (256, 16, 4) if quick else (1024, 32, 16)
        conv = torch.nn.Conv2d(c, c, 1, bias=False).to(device, memory_format=torch.channels_last)
        x = torch.randn(batch, c, hw, hw, device=device).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            rate = _best_rate(lambda: conv(x), 2 * batch * hw * hw * c * c, reps, device)
        out["fp32_conv1x1"] = {"n": f"{batch * hw * hw}x{c}x{c}", "flop_per_s": rate}
    return out


def _proc_status_kb(field: str) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def cuda_peak_memory(step, batch, device) -> dict:
    """CUDA: memory allocated before one iteration and the most allocated during it."""
    import torch

    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    step(batch)
    sync(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {"method": "torch.cuda.max_memory_allocated during one iteration (after warm-up); "
                      "before = memory_allocated before it (weights, optimiser state, gradients)",
            "before_mib": base / 2**20, "peak_mib": peak / 2**20, "step_mib": (peak - base) / 2**20}


def time_alternating(steps: dict, batch, n: int, device, inner: int = 1) -> tuple[dict, dict]:
    """Wall and process-CPU seconds per iteration for each arm, the arms interleaved.

    Each of the ``n`` samples per arm is ``inner`` back-to-back iterations between two
    device synchronisations (on CUDA the host queues the next iteration while the GPU
    runs the current one, as in training), divided by ``inner``.
    """
    wall = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    for _ in range(n):
        for name, step in steps.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(inner):
                step(batch)
            sync(device)
            wall[name].append((time.perf_counter() - t0) / inner)
            cpu[name].append((time.process_time() - c0) / inner)
    return wall, cpu


def quantile(xs, q: float) -> float:
    xs = sorted(xs)
    pos = (len(xs) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(seconds: list, cpu_seconds: list, batch: int) -> dict:
    rates = [batch / s for s in seconds]
    return {
        "img_per_s_median": statistics.median(rates),
        "img_per_s_q1": quantile(rates, 0.25),
        "img_per_s_q3": quantile(rates, 0.75),
        "img_per_s_iqr": quantile(rates, 0.75) - quantile(rates, 0.25),
        "step_s_median": statistics.median(seconds),
        "step_s": [round(s, 5) for s in seconds],
        # Process CPU time (all threads): less sensitive than wall time to other processes
        # on the machine, though OpenMP threads spinning while they wait are counted too.
        "cpu_s_median": statistics.median(cpu_seconds),
        "cpu_s": [round(s, 5) for s in cpu_seconds],
    }


def count_host_syncs(step, batch, device) -> int | None:
    """CUDA only: how many synchronising calls one iteration makes (torch.cuda sync debug mode)."""
    import warnings

    import torch

    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(batch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        sync(device)
    return sum("synchroniz" in str(w.message) for w in caught)


def profile_ops(step, batch, device, rows: int = 20) -> list:
    """Per-op self time of one iteration (torch.profiler), largest first."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step(batch)
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)[:rows]
    return [{"op": e.key, "self_ms": getattr(e, key, 0) / 1e3, "calls": e.count} for e in events]


def resolve_device(spec: str):
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda asked for, but torch sees no CUDA device")
    return dev



def save_and_print(res: dict, json_path, markdown) -> int:
    """The end of a quality bench: ``res`` saved as JSON to ``json_path`` (when given), its Markdown printed."""
    import json

    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    print(markdown(res))
    return 0
