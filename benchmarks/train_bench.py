"""Training speed: `sagan`'s real ``Trainer.train_step`` against a naive baseline (issue #7).

Arms, built in one process and timed alternately (naive, sagan, naive, sagan, ...) so that
both see the same machine load; each timed sample is one full training iteration
(one D step + one G step) on the same uint8 batch:

* ``naive``: SAGAN trained the way the widely used PyTorch port does it
  (``benchmarks/naive_sagan.py``: its own power-iteration spectral norm, explicit softmax
  attention, eager fp32, NCHW, G forward with gradients in the D step, D called twice,
  D not frozen in the G step), same architecture and widths as ``sagan``'s model;
* ``sagan``: ``Trainer.train_step`` with the defaults ``sagan train`` uses on that device,
  followed by the EMA update the training loop does after every step;
* ``sagan+VARIANT`` (``--variants``): the same Trainer with one change applied from the
  outside, to measure changes that belong in the Trainer before they are made there.

Reported: img/s per arm (median and IQR over ``--steps`` timed iterations after
``--warmup``), the ratio sagan/naive (ratio of medians, and the median of per-pair
ratios), FLOPs per iteration (``torch.utils.flop_counter.FlopCounterMode``, counted on an
eager copy), the achieved FLOP/s and its fraction of a matmul peak measured on the same
device (fp32; bf16 too on CUDA), peak memory (CUDA: max_memory_allocated during an iteration;
CPU: VmHWM of a fresh process that builds the arm and trains two iterations),
and the loader alone (``loader_bench.py``) against the step's demand.

    python benchmarks/train_bench.py                          # auto device, 64 px, batch 64
    python benchmarks/train_bench.py --json perf.json         # also write everything as JSON
    python benchmarks/train_bench.py --variants channels_last,compile
    python benchmarks/train_bench.py --device cuda --sweep 128,256,512   # sagan-only batch sweep
    python benchmarks/train_bench.py --quick --json -         # tiny smoke run (tests use it)

Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

VARIANTS = {
    "channels_last": "G, D and the input batch in channels_last memory format",
    "contiguous": "G, D and the input batch in NCHW (contiguous) memory format",
    "compile": "torch.compile of G and D (the Trainer's compile=True)",
    "eager": "no torch.compile (the Trainer's compile=False)",
    "fused_adam": "Adam(fused=True) for both optimisers",
    "attn_sdpa": "attention through F.scaled_dot_product_attention(scale=1.0)",
    "attn_explicit": "attention as bmm + softmax + bmm",
    "attn_bmm_sliced": "explicit attention without oneDNN: batched bmm over slices of the batch",
    "attn_bmm_whole": "explicit attention without oneDNN, whole batch at once (no slicing)",
    "qkv_separate": "the three 1x1 attention projections as three convolutions",
    "before": "attention as before the speed work: SDPA and three projection convolutions",
    "no_amp": "no autocast (fp32)",
    "cudagraphs": "torch.compile(mode='reduce-overhead') of G and D: CUDA graphs (no effect on the CPU)",
}


# ---------------------------------------------------------------------------- environment
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


# ---------------------------------------------------------------------------- the two arms
def make_sagan_trainer(mcfg, device, images_u8, **train_options):
    """The one place this benchmark constructs a Trainer, as ``sagan train`` does.

    The dataset is an in-memory PreparedDataset (``train_step`` is fed batches directly)
    and there is no run directory: nothing is written.
    """
    from sagan_cli.config import TrainConfig
    from sagan_cli.data.dataset import PreparedDataset
    from sagan_cli.train.loop import Trainer

    tcfg = TrainConfig(batch=int(images_u8.shape[0]), **train_options)
    meta = {"fingerprint": "sha256:benchmark", "count": int(images_u8.shape[0]), "imsize": int(images_u8.shape[2])}
    dataset = PreparedDataset(Path("<in-memory benchmark batch>"), images_u8, meta)
    return Trainer(mcfg, tcfg, device, dataset, None)


def sagan_step_fn(trainer):
    def step(batch):
        trainer.train_step(batch)
        trainer.step += 1
        if trainer.ema is not None:
            trainer.ema.update(trainer.step)
    return step


def apply_variant(trainer, name: str, mcfg, device, images_u8):
    """A Trainer with one change applied from the outside (returns a new or the same Trainer)."""
    import torch

    from sagan_cli.models import attention_layers

    if name in ("compile", "eager"):
        return make_sagan_trainer(mcfg, device, images_u8, compile=name == "compile")
    if name == "cudagraphs":
        trainer = make_sagan_trainer(mcfg, device, images_u8, compile=False)
        trainer.G_step = torch.compile(trainer.G, mode="reduce-overhead")
        trainer.D_step = trainer.D_frozen = torch.compile(trainer.D, mode="reduce-overhead")
        return trainer
    if name == "no_amp":
        return make_sagan_trainer(mcfg, device, images_u8, amp=False)
    if name in ("channels_last", "contiguous"):
        fmt = torch.channels_last if name == "channels_last" else torch.contiguous_format
        trainer.memory_format = fmt
        for net in (trainer.G, trainer.D) + ((trainer.ema.model,) if trainer.ema else ()):
            net.to(memory_format=fmt)
        return trainer
    if name == "fused_adam":
        t = trainer.tcfg
        trainer.opt_G = torch.optim.Adam(trainer.G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2), fused=True)
        trainer.opt_D = torch.optim.Adam(trainer.D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2), fused=True)
        return trainer
    blocks = list(attention_layers(trainer.G, trainer.D).values())
    if trainer.ema is not None:
        blocks += list(trainer.ema.model.attn.values())
    if name in ("attn_sdpa", "attn_explicit", "attn_bmm_sliced", "attn_bmm_whole"):
        for block in blocks:
            block.impl = "sdpa" if name == "attn_sdpa" else "explicit"
            if name.startswith("attn_bmm"):
                block.onednn = False
            if name == "attn_bmm_whole":
                block.chunk_bytes = 0
        return trainer
    if name in ("qkv_separate", "before"):
        for block in blocks:
            block.project = types.MethodType(lambda self, x: (self.query(x), self.key(x), self.value(x)), block)
            if name == "before":
                block.impl = "sdpa"
        return trainer
    raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")


# ---------------------------------------------------------------------------- measurements
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


def cpu_peak_memory(arm: str, args, batch_size: int) -> dict | None:
    """CPU: peak RSS of a fresh process that builds ``arm`` and trains it for two iterations.

    A separate process, because the benchmark's own RSS holds every arm, and memory that
    one arm freed stays in the C allocator's heap and hides the next arm's peak.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe-memory", arm, "--device", "cpu",
           "--imsize", str(args.imsize), "--batch", str(batch_size), "--conv-dim", str(args.conv_dim)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return None


def probe_memory(args) -> dict:
    """The body of ``--probe-memory ARM``: build one arm, note RSS, train two iterations, report VmHWM."""
    import numpy as np
    import torch

    from naive_sagan import NaiveTrainer
    from sagan_cli.config import ModelConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    mcfg = ModelConfig(imsize=args.imsize, g_conv_dim=args.conv_dim, d_conv_dim=args.conv_dim)
    images = np.random.default_rng(0).integers(0, 256, (args.batch, 3, args.imsize, args.imsize), dtype=np.uint8)
    batch = torch.from_numpy(images)
    if args.probe_memory == "naive":
        step = NaiveTrainer(mcfg, device).train_step
    else:
        trainer = make_sagan_trainer(mcfg, device, images)
        if args.probe_memory != "sagan":
            trainer = apply_variant(trainer, args.probe_memory.removeprefix("sagan+"), mcfg, device, images)
        step = sagan_step_fn(trainer)
    built = _proc_status_kb("VmRSS")
    step(batch)
    step(batch)
    peak = _proc_status_kb("VmHWM")
    if built is None or peak is None:
        import resource

        built, peak = None, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": "VmHWM of a fresh process that builds this arm and trains 2 iterations; "
                      "before = its VmRSS once the arm is built (torch, weights, the batch)",
            "before_mib": built / 1024 if built is not None else None, "peak_mib": peak / 1024,
            "step_mib": (peak - built) / 1024 if built is not None else None}


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


# ---------------------------------------------------------------------------- the run
def resolve_device(spec: str):
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda asked for, but torch sees no CUDA device")
    return dev


def run(args) -> dict:
    import numpy as np
    import torch

    from loader_bench import measure_loader
    from naive_sagan import NaiveTrainer
    from sagan_cli.config import ModelConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    mcfg = ModelConfig(imsize=args.imsize, g_conv_dim=args.conv_dim, d_conv_dim=args.conv_dim)
    env = environment(device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, 3, args.imsize, args.imsize), dtype=np.uint8)
    batch = torch.from_numpy(images)
    if device.type == "cuda":
        batch = batch.pin_memory()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if not args.silent else (lambda *a: None)

    say(f"building arms on {env['device_name']} ({device}), {args.imsize}px, batch {args.batch} ...")
    naive = NaiveTrainer(mcfg, device)
    sagan = make_sagan_trainer(mcfg, device, images)
    steps = {"naive": naive.train_step, "sagan": sagan_step_fn(sagan)}
    trainers = {"sagan": sagan}
    for v in args.variants:
        base = make_sagan_trainer(mcfg, device, images)
        trainers[f"sagan+{v}"] = apply_variant(base, v, mcfg, device, images)
        steps[f"sagan+{v}"] = sagan_step_fn(trainers[f"sagan+{v}"])

    n_params = {
        "naive": {"G": sum(p.numel() for p in naive.G.parameters()), "D": sum(p.numel() for p in naive.D.parameters())},
        "sagan": {"G": sum(p.numel() for p in sagan.G.parameters()), "D": sum(p.numel() for p in sagan.D.parameters())},
    }
    # FLOPs on an eager copy (a compiled graph hides its kernels from the counter), its CPU
    # attention on the bmm path: the counter has no formula for oneDNN's linear op.
    say("counting FLOPs ...")
    eager_sagan = make_sagan_trainer(mcfg, device, images, compile=False)
    for block in _attn(eager_sagan):
        block.onednn = False
    flops_fwd = {
        "naive": forward_flops_per_image(naive.G, naive.D, mcfg.z_dim, device),
        "sagan": forward_flops_per_image(eager_sagan.G, eager_sagan.D, mcfg.z_dim, device),
    }
    flops_step = {"naive": count_flops(lambda: naive.train_step(batch)),
                  "sagan": count_flops(lambda: sagan_step_fn(eager_sagan)(batch))}
    del eager_sagan

    for i in range(args.warmup):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(batch)
            sync(device)
            say(f"warm-up {i + 1}/{args.warmup} {name}: {time.perf_counter() - t0:.2f} s")
    say(f"timing {args.steps} iterations per arm, alternating {', '.join(steps)} ...")
    times, cpu_times = time_alternating(steps, batch, args.steps, device, args.inner)
    arms = {name: summarize(ts, cpu_times[name], args.batch) for name, ts in times.items()}
    pairs = [n / s for n, s in zip(times["naive"], times["sagan"])]  # sagan speed-up per pair

    peaks = matmul_peaks(device, args.quick)
    fp32_peak = max(v["flop_per_s"] for k, v in peaks.items() if k.startswith("fp32"))
    for name, arm in arms.items():
        flops = flops_step["naive" if name == "naive" else "sagan"]
        arm["flops_per_step"] = flops
        arm["flop_per_s"] = flops / arm["step_s_median"]
        arm["fraction_of_fp32_peak"] = arm["flop_per_s"] / fp32_peak
        if "bf16_matmul" in peaks:
            arm["fraction_of_bf16_peak"] = arm["flop_per_s"] / peaks["bf16_matmul"]["flop_per_s"]
        if device.type == "cuda":
            arm["memory"] = cuda_peak_memory(steps[name], batch, device)
        elif name in ("naive", "sagan") or not name.endswith("compile"):
            say(f"peak memory of {name} (a fresh process) ...")
            arm["memory"] = cpu_peak_memory(name, args, args.batch)
    host_syncs = count_host_syncs(steps["sagan"], batch, device)

    result = {
        "benchmark": "train_bench",
        "environment": env,
        "imsize": args.imsize,
        "batch": args.batch,
        "conv_dim": args.conv_dim,
        "warmup": args.warmup,
        "timed_steps_per_arm": args.steps,
        "iterations_per_timed_step": args.inner,
        "sagan_settings": {
            "compile": trainers["sagan"].G_step is not trainers["sagan"].G,
            "amp_dtype": str(sagan.amp_dtype).replace("torch.", "") if sagan.amp_dtype else None,
            "memory_format": str(sagan.memory_format).replace("torch.", ""),
            "attention": sorted({"sdpa" if b.use_sdpa(batch.to(device)) else "explicit" for b in _attn(sagan)}),
            "host_syncs_per_step": host_syncs,
            "cpu_attention_onednn": _onednn_available() if device.type == "cpu" else None,
            "ema": sagan.ema is not None,
        },
        "variants": {v: VARIANTS[v] for v in args.variants},
        "params": n_params,
        "forward_flops_per_image": flops_fwd,
        "arms": arms,
        "ratio": arms["sagan"]["img_per_s_median"] / arms["naive"]["img_per_s_median"],
        "ratio_paired_median": statistics.median(pairs),
        "ratio_cpu_time": arms["naive"]["cpu_s_median"] / arms["sagan"]["cpu_s_median"],
        "matmul_peak": peaks,
    }
    if args.sweep:
        result["sweep"] = sweep(args, mcfg, device, say)
    if args.profile:
        say("profiling one iteration per arm ...")
        result["profile"] = {name: profile_ops(step, batch, device) for name, step in steps.items()}
    if not args.no_loader:
        say("measuring the loader alone ...")
        loader = measure_loader(args.imsize, args.batch, n_images=256 if args.quick else 4096,
                                batches=20 if args.quick else 200, device=str(device), repeat=1 if args.quick else 3)
        demand = max(a["img_per_s_median"] for name, a in arms.items() if name.startswith("sagan"))
        loader["step_demand_img_per_s"] = demand
        loader["headroom"] = loader["img_per_s"] / demand
        result["loader"] = loader
    if hasattr(os, "getloadavg"):
        env["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def _onednn_available() -> bool:
    from sagan_cli.models import cpu_attention

    return cpu_attention.available()


def _attn(trainer):
    from sagan_cli.models import attention_layers

    return attention_layers(trainer.G, trainer.D).values()


def sweep(args, mcfg, device, say) -> list:
    """sagan alone at other batch sizes (the best-batch figure on a GPU)."""
    import numpy as np
    import torch

    rows = []
    for b in args.sweep:
        images = np.random.default_rng(b).integers(0, 256, (b, 3, args.imsize, args.imsize), dtype=np.uint8)
        batch = torch.from_numpy(images)
        if device.type == "cuda":
            batch = batch.pin_memory()
        trainer = make_sagan_trainer(mcfg, device, images)
        step = sagan_step_fn(trainer)
        for _ in range(args.warmup):
            step(batch)
        sync(device)
        wall, cpu = time_alternating({"s": step}, batch, args.steps, device, args.inner)
        row = {"batch": b, **summarize(wall["s"], cpu["s"], b)}
        row["memory"] = (cuda_peak_memory(step, batch, device) if device.type == "cuda"
                         else cpu_peak_memory("sagan", args, b))
        say(f"sweep batch {b}: {row['img_per_s_median']:.1f} img/s")
        rows.append(row)
        del trainer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


# ---------------------------------------------------------------------------- output
def _si(x: float, unit: str) -> str:
    for div, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f} {p}{unit}"
    return f"{x:.2f} {unit}"


def _mib(mem: dict | None, key: str) -> str:
    value = (mem or {}).get(key)
    return "-" if value is None else f"{value:.0f} MiB"


def render(res: dict) -> str:
    env = res["environment"]
    out = [
        f"train_bench: {env['device_name']} ({env['device']}), torch {env['torch']}, {env['threads']} threads "
        f"({env['cpus_usable']} CPUs usable), git {env['git']}",
        f"{res['imsize']} px, conv dim {res['conv_dim']}, batch {res['batch']}, {res['timed_steps_per_arm']} timed samples of "
        f"{res['iterations_per_timed_step']} iteration(s) per arm after {res['warmup']} warm-up, arms alternated; "
        f"load average {env.get('loadavg_start')} → {env.get('loadavg_end')}",
        f"sagan settings: {res['sagan_settings']}",
        "",
        f"{'arm':<22} {'img/s median':>12} {'IQR':>17} {'s/iter':>8} {'CPU s':>7} {'FLOP/iter':>12} {'FLOP/s':>13} "
        f"{'of peak':>8} {'peak mem':>10} {'step mem':>10}",
    ]
    for name, a in res["arms"].items():
        frac = a.get("fraction_of_bf16_peak", a["fraction_of_fp32_peak"])
        out.append(
            f"{name:<22} {a['img_per_s_median']:>12.2f} {a['img_per_s_q1']:>8.2f}–{a['img_per_s_q3']:<8.2f} "
            f"{a['step_s_median']:>8.3f} {a['cpu_s_median']:>7.2f} {_si(a['flops_per_step'], 'FLOP'):>12} {_si(a['flop_per_s'], 'FLOP/s'):>13} "
            f"{frac:>8.1%} {_mib(a.get('memory'), 'peak_mib'):>10} {_mib(a.get('memory'), 'step_mib'):>10}"
        )
    peaks = ", ".join(f"{k} {_si(v['flop_per_s'], 'FLOP/s')} ({v['n']})" for k, v in res["matmul_peak"].items())
    out += [
        "",
        f"sagan / naive: {res['ratio']:.2f}× (ratio of medians), {res['ratio_paired_median']:.2f}× (median of pairs), "
        f"{res['ratio_cpu_time']:.2f}× in process CPU time per iteration",
        f"matmul peak: {peaks}; 'of peak' is against the "
        f"{'bf16 matmul' if 'bf16_matmul' in res['matmul_peak'] else 'best fp32'} figure",
        f"memory: {next((a['memory']['method'] for a in res['arms'].values() if a.get('memory')), 'not measured')}; "
        "step mem = peak - before",
        "params: " + "; ".join(f"{k} G {v['G']:,} D {v['D']:,}" for k, v in res["params"].items()),
        "forward FLOPs per image: " + "; ".join(f"{k} G {_si(v['G'], 'FLOP')} D {_si(v['D'], 'FLOP')}"
                                              for k, v in res["forward_flops_per_image"].items()),
    ]
    if "loader" in res:
        ld = res["loader"]
        out.append(f"loader alone: {ld['img_per_s']:,.0f} img/s = {ld['headroom']:.0f}× the step's demand of "
                   f"{ld['step_demand_img_per_s']:.1f} img/s ({ld['cache']})")
    for row in res.get("sweep", []):
        out.append(f"sweep: sagan batch {row['batch']}: {row['img_per_s_median']:.1f} img/s "
                   f"(IQR {row['img_per_s_q1']:.1f}–{row['img_per_s_q3']:.1f}), peak {_mib(row.get('memory'), 'peak_mib')}")
    for name, ops in res.get("profile", {}).items():
        out += ["", f"profile of one iteration, {name} (self time per op):"]
        out += [f"  {o['op']:<48} {o['self_ms']:>10.1f} ms {o['calls']:>6} calls" for o in ops]
    return "\n".join(out)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def render_markdown(res: dict) -> str:
    """The arms as a Markdown table (what docs/performance.md quotes)."""
    env = res["environment"]
    lines = [
        f"{env['device_name']} ({env['device']}), {env['threads']} threads, torch {env['torch']}, "
        f"{res['imsize']} px, batch {res['batch']}, {res['timed_steps_per_arm']}×{res['iterations_per_timed_step']} "
        f"timed iterations per arm, load average {env.get('loadavg_start')} → {env.get('loadavg_end')}",
        "",
        "| arm | img/s (median) | IQR | s/iter | CPU s/iter | GFLOP/iter | achieved FLOP/s | of peak | peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, a in res["arms"].items():
        frac = a.get("fraction_of_bf16_peak", a["fraction_of_fp32_peak"])
        lines.append(
            f"| {name} | {a['img_per_s_median']:.1f} | {a['img_per_s_q1']:.1f}–{a['img_per_s_q3']:.1f} | "
            f"{a['step_s_median']:.3f} | {a['cpu_s_median']:.2f} | {a['flops_per_step'] / 1e9:.1f} | "
            f"{_si(a['flop_per_s'], 'FLOP/s')} | {frac:.0%} | {_mib(a.get('memory'), 'peak_mib')} |")
    lines += ["", f"sagan / naive: **{res['ratio']:.2f}×** (ratio of medians), {res['ratio_paired_median']:.2f}× "
                  f"(median of pairs), {res['ratio_cpu_time']:.2f}× (process CPU time)"]
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    ap.add_argument("--imsize", type=int, default=64, choices=(32, 64, 128, 256))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--conv-dim", type=int, default=64, help="G and D base width (default 64, the reference model)")
    ap.add_argument("--steps", type=int, default=None, help="timed samples per arm (default: 7 on CPU, 30 on CUDA)")
    ap.add_argument("--inner", type=int, default=None,
                    help="iterations per timed sample, between two syncs (default: 1 on CPU, 10 on CUDA)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed iterations per arm first (default: 2 on CPU, 5 on CUDA, where compiling happens)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--variants", default="", help="comma list of extra sagan arms: " + ", ".join(VARIANTS))
    ap.add_argument("--sweep", default="", help="comma list of batch sizes to time sagan alone at, e.g. 128,256,512")
    ap.add_argument("--profile", action="store_true", help="also print a per-op profile of one iteration per arm")
    ap.add_argument("--no-loader", action="store_true", help="skip the loader measurement")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 32 px, conv dim 16, batch 8, 2 timed iterations, 1 warm-up, small loader test")
    ap.add_argument("--probe-memory", metavar="ARM", help=argparse.SUPPRESS)  # internal: see cpu_peak_memory
    ap.add_argument("--markdown", action="store_true", help="also print the arms as a Markdown table")
    ap.add_argument("--from-json", metavar="IN", help="measure nothing: render the results saved in IN")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON to OUT ('-' for stdout, table to stderr)")
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda") or (args.device == "auto" and _cuda_available())
    defaults = (30, 10, 5) if cuda else (7, 1, 2)
    if args.quick:
        args.imsize, args.batch, args.conv_dim, defaults = 32, 8, 16, (2, 1, 1)
    for name, value in zip(("steps", "inner", "warmup"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.variants = [v for v in args.variants.split(",") if v]
    for v in args.variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)}")
    args.sweep = [int(b) for b in args.sweep.split(",") if b]
    if args.steps < 1 or args.inner < 1 or args.warmup < 0 or args.batch < 1:
        ap.error("--steps >= 1, --inner >= 1, --warmup >= 0 and --batch >= 1")
    args.silent = False
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.probe_memory:
        print(json.dumps(probe_memory(args)))
        return 0
    res = json.loads(Path(args.from_json).read_text()) if args.from_json else run(args)
    table = render(res) + ("\n\n" + render_markdown(res) if args.markdown else "")
    if args.json == "-":
        print(table, file=sys.stderr)
        print(json.dumps(res, indent=2))
    else:
        print(table)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
