"""Does it learn, and does self-attention help? The CPU ablation of docs/fidelity.md.

On the built-in mirrored synthetic dataset (`sagan prepare synthetic`, 32 px), every arm trains for the
same number of steps at the same batch (the same image budget), one after another on this machine, and
is scored at several points by the two weight-free measures of `sagan evaluate`:

* SWD ×1e3 (Karras et al. 2018) against the training data, with the data's real-vs-real floor;
* the mirror error, mean |x − fliplr(x)| on [0, 1] pixels: 0 for the data, so it measures exactly the
  left↔right consistency that self-attention is for.

Arms (``--arms``):

* ``sagan``: `sagan train` as shipped (paper attention at the default placement, EMA);
* ``no-attention``: the same with ``--g-attn none --d-attn none``;
* ``official``: the same with ``--attention official`` (the authors' released block);
* ``naive``: the port-style trainer of ``benchmarks/naive_sagan.py`` (the same networks and maths; its own
  spectral norm, no EMA), fed the same batches in the same order.

The `sagan` arms run the real CLI (`sagan train` in a subprocess, checkpoints at every point); each
point is scored twice, with the EMA generator (what `sample` and `evaluate` use) and with the raw G,
which is the one to compare with the naive trainer (it has no EMA). Scoring goes through `sagan
evaluate`'s own pipeline (``metrics.evaluate.score``) with standing statistics, as `evaluate` does by
default: ``--eval-num`` generated images against as many real ones.

    python benchmarks/fidelity_bench.py                                  # the page's settings
    python benchmarks/fidelity_bench.py --steps 200 --every 100 --seeds 0 --arms sagan,naive   # a short form
    python benchmarks/fidelity_bench.py --json docs/perf/fidelity-cpu.json --plot docs/images/fidelity-curves.png
    python benchmarks/fidelity_bench.py --from-json docs/perf/fidelity-cpu.json   # the page's tables again

Not a test: nothing is asserted. The page's tables are this script's Markdown output of the saved JSON
(tests/test_benchmarks.py keeps them equal).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

ARMS = {
    "sagan": [],
    "no-attention": ["--g-attn", "none", "--d-attn", "none"],
    "official": ["--attention", "official"],
    "naive": None,  # in-process, benchmarks/naive_sagan.py
}
METRICS = ("swd", "mirror")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated, from: " + ", ".join(ARMS))
    p.add_argument("--seeds", default="0,1", help="comma-separated training seeds")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--every", type=int, default=300, help="score every N steps (and at the end)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--g-conv-dim", type=int, default=32)
    p.add_argument("--d-conv-dim", type=int, default=32)
    p.add_argument("--ema-start", type=int, default=250)
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--count", type=int, default=6000, help="images in the synthetic dataset")
    p.add_argument("--eval-num", type=int, default=1024, help="generated images per score (and as many real)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--workdir", type=Path, default=None, help="data and runs (default: a temporary directory)")
    p.add_argument("--reuse", action="store_true",
                   help="score the runs of an earlier call in --workdir instead of training again, where they match")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--plot", type=Path, default=None, help="draw the curves into this PNG")
    p.add_argument("--from-json", type=Path, nargs="+", default=None,
                   help="render saved results instead of running; several files (e.g. one per seed, run in parallel) "
                        "are merged, and --json then saves the merged results")
    return p.parse_args(argv)


def points(steps: int, every: int) -> list[int]:
    return sorted(set(range(every, steps + 1, every)) | {steps})


def sagan(*args, threads=None) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    subprocess.run([sys.executable, "-m", "sagan_cli", *map(str, args)], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def score(data: Path, num: int, *, ckpt: Path | None = None, ema: bool = True, generator=None) -> dict:
    """`sagan evaluate --swd --mirror` of a checkpoint (or a G in memory) against ``data``."""
    from rich.console import Console

    from sagan_cli.metrics.evaluate import Request, score as evaluate_score

    req = Request(ckpt=str(ckpt) if ckpt else None, data=data, metrics=METRICS, num_gen=num, num_real=num,
                  device="cpu", ema=ema, generator=generator)
    _, values, _ = evaluate_score(req, Console(quiet=True), say=lambda t: None, warn=lambda t: None)
    return {k: round(float(values[k]), 5) for k in ("swd", "swd_floor", "mirror_error")}


def reusable(runs: Path, name: str, args) -> Path | None:
    """With --reuse: an earlier run of this arm and seed under ``runs`` that has every point's checkpoint and the
    same settings (its --steps may be larger: nothing in a run depends on its total step count)."""
    if not args.reuse or not runs.exists():
        return None
    for run in sorted(runs.glob(f"*-{name}")):
        try:
            cfg = json.loads((run / "config.json").read_text())
        except (OSError, ValueError):
            continue
        m, t = cfg["model"], cfg["train"]
        same = (m["g_conv_dim"], m["d_conv_dim"], t["batch"], t["seed"], t["ema_decay"], t["ema_start"]) == \
            (args.g_conv_dim, args.d_conv_dim, args.batch, seed_of(name), args.ema_decay, args.ema_start)
        if same and t["steps"] >= args.steps and all(
                (run / "checkpoints" / f"step-{step:07d}.pt").exists() for step in points(args.steps, args.every)):
            return run
    return None


def seed_of(name: str) -> int:
    return int(name.rsplit("-s", 1)[1])


def run_sagan_arm(arm: str, seed: int, args, data: Path, runs: Path) -> dict:
    name = f"{arm}-s{seed}"
    run = reusable(runs, name, args)
    if run is not None:
        print(f"  reusing {run}", flush=True)
        return {"train_s": None, "points": score_points(run, name, args, data), "run": str(run), "reused": True}
    t0 = time.monotonic()
    sagan("train", "--imsize", 32, "--data", data, "--steps", args.steps, "--batch", args.batch, "--device", "cpu",
          "--g-conv-dim", args.g_conv_dim, "--d-conv-dim", args.d_conv_dim, "--seed", seed,
          "--ema-start", args.ema_start, "--ema-decay", args.ema_decay, "--runs", runs, "--name", name,
          "--ckpt-every", args.every, "--keep-ckpts", 1000, "--sample-every", args.every,
          "--log-every", args.every, *ARMS[arm], threads=args.threads)
    train_s = time.monotonic() - t0
    run = sorted(p for p in runs.iterdir() if p.name.endswith(name))[-1]
    return {"train_s": round(train_s, 1), "points": score_points(run, name, args, data), "run": str(run)}


def score_points(run: Path, name: str, args, data: Path) -> list[dict]:
    out = []
    for step in points(args.steps, args.every):
        ckpt = run / "checkpoints" / f"step-{step:07d}.pt"
        out.append({"step": step, "images": step * args.batch, "ema": score(data, args.eval_num, ckpt=ckpt),
                    "raw": score(data, args.eval_num, ckpt=ckpt, ema=False)})
        print(f"  {name} step {step}: {out[-1]}", flush=True)
    return out


def run_naive_arm(seed: int, args, data: Path) -> dict:
    import torch

    from naive_sagan import NaiveGenerator, NaiveTrainer
    from sagan_cli.data.dataset import open_dataset
    from sagan_cli.data.loader import EpochSampler
    from sagan_cli.models.config import ModelConfig
    from sagan_cli.models.standing import apply_standing_stats

    ds = open_dataset(data, 32)
    cfg = ModelConfig(imsize=32, g_conv_dim=args.g_conv_dim, d_conv_dim=args.d_conv_dim)
    trainer = NaiveTrainer(cfg, torch.device("cpu"), seed=seed)
    sampler = EpochSampler(len(ds), args.batch, seed=seed)  # the order `sagan train --seed` draws
    want, out, train_s = set(points(args.steps, args.every)), [], 0.0
    for step in range(1, args.steps + 1):
        t0 = time.monotonic()
        idx = sampler.next_indices()
        trainer.G.train(), trainer.D.train()
        trainer.train_step(torch.from_numpy(ds.images[idx]))
        train_s += time.monotonic() - t0
        if step in want:
            with torch.random.fork_rng():  # a copy (its spectral norm's weight is not a leaf: no deepcopy)
                G = NaiveGenerator(cfg)
            G.load_state_dict(trainer.G.state_dict())
            G = apply_standing_stats(G.requires_grad_(False), cfg.z_dim, args.batch)
            out.append({"step": step, "images": step * args.batch, "ema": None,
                        "raw": score(data, args.eval_num, generator=(G, cfg, f"the naive step-{step} generator"))})
            print(f"  naive-s{seed} step {step}: {out[-1]}", flush=True)
    return {"train_s": round(train_s, 1), "points": out}


def run(args) -> dict:
    from bench_measure import environment
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="fidelity-"))
    data = work / "data" / "synthetic-32"
    if not (data / "meta.json").exists():
        sagan("prepare", "synthetic", "--imsize", 32, "--count", args.count, "--out", data)
    env = environment(torch.device("cpu"))
    res = {"environment": env, "settings": {
        "imsize": 32, "batch": args.batch, "steps": args.steps, "every": args.every, "g_conv_dim": args.g_conv_dim,
        "d_conv_dim": args.d_conv_dim, "ema_start": args.ema_start, "ema_decay": args.ema_decay,
        "count": args.count, "eval_num": args.eval_num, "seeds": seeds, "standing_stats": True},
        "arms": {}}
    for arm in arms:
        res["arms"][arm] = {}
        for seed in seeds:
            print(f"{arm}, seed {seed}", flush=True)
            res["arms"][arm][str(seed)] = (run_naive_arm(seed, args, data) if ARMS[arm] is None
                                           else run_sagan_arm(arm, seed, args, data, work / "runs"))
    env["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return res


def merge(parts: list[dict]) -> dict:
    """Results of runs with the same settings but other seeds (e.g. one process per seed) as one."""
    out = copy.deepcopy(parts[0])
    for part in parts[1:]:
        mine = {k: v for k, v in part["settings"].items() if k != "seeds"}
        if mine != {k: v for k, v in out["settings"].items() if k != "seeds"}:
            raise SystemExit("--from-json: the files were run with different settings")
        out["settings"]["seeds"] += part["settings"]["seeds"]
        for arm, runs in part["arms"].items():
            out["arms"].setdefault(arm, {}).update(runs)
        out.setdefault("environments", [out["environment"]]).append(part["environment"])
    out["settings"]["seeds"] = sorted(set(out["settings"]["seeds"]))
    return out


# ------------------------------------------------------------------------------------------ report
def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def series(res: dict, arm: str, which: str, key: str) -> list[tuple[int, float, list[float]]]:
    """(step, mean over seeds, per-seed values) of one arm's ``which`` (ema|raw) generator's ``key``."""
    runs = list(res["arms"][arm].values())
    out = []
    for i, p in enumerate(runs[0]["points"]):
        vals = [r["points"][i][which][key] for r in runs if r["points"][i][which] is not None]
        if vals:
            out.append((p["step"], _mean(vals), vals))
    return out


def floor(res: dict) -> float:
    """The data's real-vs-real SWD floor (the same real subsets at every score)."""
    return _mean([p["raw"]["swd_floor"] for arm in res["arms"].values() for r in arm.values() for p in r["points"]])


def markdown(res: dict) -> str:
    s, env = res["settings"], res["environment"]
    f = floor(res)
    lines = [
        f"Settings: {s['imsize']} px, batch {s['batch']}, {s['steps']} steps ({s['steps'] * s['batch']:,} images) per "
        f"run, G/D conv dim {s['g_conv_dim']}/{s['d_conv_dim']}, EMA decay {s['ema_decay']} from step "
        f"{s['ema_start']}, {s['count']} training images, {s['eval_num']} generated vs {s['eval_num']} real images "
        f"per score, seeds {', '.join(map(str, s['seeds']))}. Machine: {env['cpu']}, {env['threads']} torch "
        f"thread{'s' if env['threads'] != 1 else ''} per process, "
        f"torch {env['torch']}, git {env['git']}, load average {env.get('loadavg_start')} → {env.get('loadavg_end')}.",
        "",
        f"SWD floor (real vs real, same counts): **{f:.2f}**. Values: mean over seeds (each seed in brackets).",
        "",
    ]
    steps = [p["step"] for p in next(iter(res["arms"].values()))[str(s["seeds"][0])]["points"]]
    for key, title, digits in (("mirror_error", "Mirror error (data: 0)", 4), ("swd", "SWD ×1e3", 2)):
        lines += [f"**{title}**", "", "| arm | G | " + " | ".join(f"step {t}" for t in steps) + " |",
                  "|---|---|" + "---|" * len(steps)]
        for arm in res["arms"]:
            for which in ("ema", "raw"):
                row = series(res, arm, which, key)
                if not row:
                    continue
                cells = [f"{m:.{digits}f} ({', '.join(f'{v:.{digits}f}' for v in vals)})" for _, m, vals in row]
                lines.append(f"| {arm} | {which} | " + " | ".join(cells) + " |")
        lines.append("")
    times = ", ".join(f"{arm} {_mean([r['train_s'] for r in runs.values()]):.0f} s"
                      for arm, runs in res["arms"].items() if _mean([r["train_s"] for r in runs.values()]))
    if times:
        lines.append(f"Training time per run (mean over seeds, scoring excluded; the machine was shared): {times}.")
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    f = floor(res)
    for arm in res["arms"]:
        # every arm's EMA generator (the naive trainer has none: its G), and sagan's raw G beside the naive one
        shown = [("raw", "-")] if arm == "naive" else [("ema", "-")] + ([("raw", "--")] if arm == "sagan" else [])
        for ax, key in zip(axes, ("mirror_error", "swd")):
            colour = None
            for which, style in shown:
                row = series(res, arm, which, key)
                label = f"{arm} ({'G' if which == 'raw' else 'EMA'})"
                line, = ax.plot([t for t, _, _ in row], [m for _, m, _ in row], marker="o", ls=style, label=label,
                                color=colour)
                colour = line.get_color()
                for k in range(len(row[0][2])):
                    ax.plot([t for t, _, _ in row], [v[k] for _, _, v in row], color=colour, alpha=0.25, lw=1, ls=style)
    axes[0].set(title="mirror error (data: 0)", xlabel="step", ylabel="mean |x - fliplr(x)|")
    axes[1].axhline(f, color="k", ls="--", lw=1, label=f"real-vs-real floor {f:.1f}")
    axes[1].set(title="SWD x1e3", xlabel="step", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    res = merge([json.loads(p.read_text()) for p in args.from_json]) if args.from_json else run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    if args.plot:
        plot(res, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
