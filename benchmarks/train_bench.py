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

``--arch resnet`` times the authors' residual model instead of the default ``dcgan``; the port has no
such model, so there is no naive arm and no ratio (``ratio`` is null in the JSON).

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
    python benchmarks/train_bench.py --arch resnet --imsize 128 --batch 8 --no-loader   # sagan arm alone

Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
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

from bench_measure import (  # noqa: E402  (after the path set-up above)
    _proc_status_kb, count_flops, count_host_syncs, cuda_peak_memory, environment, forward_flops_per_image,
    matmul_peaks, profile_ops, resolve_device, summarize, sync, time_alternating,
)
from bench_report import render, render_markdown  # noqa: E402
from sagan_cli.models import ARCHITECTURES  # noqa: E402
from sagan_cli.util.images import IMSIZES  # noqa: E402

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



# ---------------------------------------------------------------------------- the two arms
def make_sagan_trainer(mcfg, device, images_u8, **train_options):
    """The one place this benchmark constructs a Trainer, as ``sagan train`` does.

    The dataset is an in-memory PreparedDataset (``train_step`` is fed batches directly)
    and there is no run directory: nothing is written.
    """
    from sagan_cli.train.config import TrainConfig
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



def cpu_peak_memory(arm: str, args, batch_size: int) -> dict | None:
    """CPU: peak RSS of a fresh process that builds ``arm`` and trains it for two iterations.

    A separate process, because the benchmark's own RSS holds every arm, and memory that
    one arm freed stays in the C allocator's heap and hides the next arm's peak.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--probe-memory", arm, "--device", "cpu",
           "--imsize", str(args.imsize), "--batch", str(batch_size), "--conv-dim", str(args.conv_dim), "--arch", args.arch]
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
    from sagan_cli.models.config import ModelConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    mcfg = ModelConfig(arch=args.arch, imsize=args.imsize, g_conv_dim=args.conv_dim, d_conv_dim=args.conv_dim)
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


# ---------------------------------------------------------------------------- the run


def run(args) -> dict:
    import numpy as np
    import torch

    from loader_bench import measure_loader
    from naive_sagan import NaiveTrainer
    from sagan_cli.models.config import ModelConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    mcfg = ModelConfig(arch=args.arch, imsize=args.imsize, g_conv_dim=args.conv_dim, d_conv_dim=args.conv_dim)
    with_naive = args.arch == "dcgan"  # the port's model: the naive baseline exists for it alone
    env = environment(device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch, 3, args.imsize, args.imsize), dtype=np.uint8)
    batch = torch.from_numpy(images)
    if device.type == "cuda":
        batch = batch.pin_memory()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if not args.silent else (lambda *a: None)

    say(f"building arms on {env['device_name']} ({device}), {args.arch} {args.imsize}px, batch {args.batch} ...")
    naive = NaiveTrainer(mcfg, device) if with_naive else None
    sagan = make_sagan_trainer(mcfg, device, images)
    steps = ({"naive": naive.train_step} if with_naive else {}) | {"sagan": sagan_step_fn(sagan)}
    trainers = {"sagan": sagan}
    for v in args.variants:
        base = make_sagan_trainer(mcfg, device, images)
        trainers[f"sagan+{v}"] = apply_variant(base, v, mcfg, device, images)
        steps[f"sagan+{v}"] = sagan_step_fn(trainers[f"sagan+{v}"])

    n_params = {name: {"G": sum(p.numel() for p in t.G.parameters()), "D": sum(p.numel() for p in t.D.parameters())}
                for name, t in (("naive", naive), ("sagan", sagan)) if t is not None}
    # FLOPs on an eager copy (a compiled graph hides its kernels from the counter), its CPU
    # attention on the bmm path: the counter has no formula for oneDNN's linear op.
    say("counting FLOPs ...")
    eager_sagan = make_sagan_trainer(mcfg, device, images, compile=False)
    for block in _attn(eager_sagan):
        block.onednn = False
    flops_fwd = {"sagan": forward_flops_per_image(eager_sagan.G, eager_sagan.D, mcfg.z_dim, device)}
    flops_step = {"sagan": count_flops(functools.partial(sagan_step_fn(eager_sagan), batch))}
    if with_naive:
        flops_fwd = {"naive": forward_flops_per_image(naive.G, naive.D, mcfg.z_dim, device)} | flops_fwd
        flops_step = {"naive": count_flops(lambda: naive.train_step(batch))} | flops_step
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
    pairs = [n / s for n, s in zip(times["naive"], times["sagan"])] if with_naive else []  # sagan speed-up per pair

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
        "arch": args.arch,
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
        "ratio": arms["sagan"]["img_per_s_median"] / arms["naive"]["img_per_s_median"] if with_naive else None,
        "ratio_paired_median": statistics.median(pairs) if with_naive else None,
        "ratio_cpu_time": arms["naive"]["cpu_s_median"] / arms["sagan"]["cpu_s_median"] if with_naive else None,
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



def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    ap.add_argument("--arch", default="dcgan", choices=list(ARCHITECTURES),
                    help="architecture (default dcgan); resnet has no naive arm: the port has no such model")
    ap.add_argument("--imsize", type=int, default=64, choices=IMSIZES)
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
