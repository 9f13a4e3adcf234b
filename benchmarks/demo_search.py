"""Which training settings learn fastest? Candidates for `make demo`, one `sagan train` run each.

A candidate is a set of `sagan train` options on the demo's data (`sagan prepare synthetic --imsize 32
--count 6000`). It trains with ``--eval-every`` scoring (SWD and the mirror error of the EMA generator with
standing statistics, ``--eval-num`` generated images against as many real ones: the same real subset, so
the same floor, at every point of every candidate), and its eval records, its options and its speed are
saved under its name in the JSON file. Scores depend on the steps, not on the machine's load, so
candidates may run side by side (``--threads 1``); their speeds then say little.

    python benchmarks/demo_search.py --name lr4e-4 --steps 900 --every 300 --json docs/perf/demo-search-cpu.json \\
        -- --lr-g 4e-4 --lr-d 4e-4
    python benchmarks/demo_search.py --collect runs/00000-x --name mine --json docs/perf/demo-search-cpu.json
    python benchmarks/demo_search.py --from-json docs/perf/demo-search-cpu.json       # the table

``--collect RUN_DIR`` adds a run made elsewhere by `sagan train ... --eval-every N --eval-metrics swd,mirror`
(its config.json and metrics.jsonl). Not a test: nothing is asserted; docs/fidelity.md's table is this
script's output for the saved JSON (tests/test_benchmarks.py keeps them equal).
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

SHOWN = ("batch", "lr_g", "lr_d", "beta1", "beta2", "ema_decay", "ema_start")  # the options the table shows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", help="the candidate's name in the JSON file")
    p.add_argument("--steps", type=int, default=900)
    p.add_argument("--every", type=int, default=300, help="score every N steps")
    p.add_argument("--eval-num", type=int, default=1024)
    p.add_argument("--count", type=int, default=6000, help="images in the synthetic dataset")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the training (default: torch's)")
    p.add_argument("--workdir", type=Path, default=None, help="data and runs (default: a temporary directory)")
    p.add_argument("--collect", type=Path, default=None, help="add this finished run directory instead of training")
    p.add_argument("--json", type=Path, default=None, help="the results file: the candidate is added (or replaced)")
    p.add_argument("--from-json", type=Path, default=None, help="render saved results instead of running")
    p.add_argument("train_args", nargs="*", help="`sagan train` options of the candidate (after --)")
    args = p.parse_args(argv)
    if args.from_json is None and not args.name:
        p.error("--name is required to run or collect a candidate")
    return args


def collect(run: Path) -> dict:
    """A finished run's options, eval records and speed, from its config.json and metrics.jsonl."""
    cfg = json.loads((run / "config.json").read_text())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [{k: r[k] for k in ("step", "swd", "swd_floor", "mirror_error", "eval_s") if k in r}
             for r in records if r.get("kind") == "eval"]
    if not evals:
        raise SystemExit(f"{run}: no eval records (train with --eval-every N --eval-metrics swd,mirror)")
    speeds = [r["img_per_s"] for r in records if "img_per_s" in r and r.get("kind") is None]
    t, m = cfg["train"], cfg["model"]
    return {"options": {**{k: t[k] for k in SHOWN}, "g_conv_dim": m["g_conv_dim"], "d_conv_dim": m["d_conv_dim"],
                        "arch": m["arch"], "attention": m["attention"], "loss": t.get("loss", "hinge")},
            "data": cfg["data"]["fingerprint"], "evals": evals,
            "img_per_s_median": sorted(speeds)[len(speeds) // 2] if speeds else None,
            "tool_version": cfg.get("tool_version")}


def train(args) -> dict:
    from fidelity_bench import sagan

    work = args.workdir or Path(tempfile.mkdtemp(prefix="demo-search-"))
    data = work / "data" / "synthetic-32"
    if not (data / "meta.json").exists():
        sagan("prepare", "synthetic", "--imsize", 32, "--count", args.count, "--out", data)
    runs = work / "runs" / args.name
    sagan("train", "--imsize", 32, "--data", data, "--steps", args.steps, "--device", "cpu", "--runs", runs,
          "--name", args.name, "--log-every", 100, "--sample-every", args.every, "--ckpt-every", args.every,
          "--eval-every", args.every, "--eval-metrics", "swd,mirror", "--eval-num", args.eval_num, *args.train_args,
          threads=args.threads)
    return collect(sorted(p for p in runs.iterdir() if p.is_dir())[-1])


def markdown(res: dict) -> str:
    lines = ["| candidate | batch | lr G / D | betas | EMA decay (from step) | " + "score at step: mirror error / SWD |",
             "|---|---|---|---|---|---|"]
    for name, c in res["candidates"].items():
        o = c["options"]
        scores = ", ".join(f"{e['step']}: {e['mirror_error']:.3f} / {e['swd']:.1f}" for e in c["evals"])
        lines.append(f"| {name} | {o['batch']} | {o['lr_g']:g} / {o['lr_d']:g} | {o['beta1']:g}, {o['beta2']:g} | "
                     f"{o['ema_decay']:g} ({o['ema_start']}) | {scores} |")
    floors = sorted({round(e["swd_floor"], 2) for c in res["candidates"].values() for e in c["evals"]})
    lines += ["", f"SWD floor (real vs real at the same count): {', '.join(map(str, floors))}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    from bench_measure import save_and_print

    args = parse_args(argv)
    if args.from_json:
        res = json.loads(args.from_json.read_text())
    else:
        cand = collect(args.collect) if args.collect else train(args)
        res = json.loads(args.json.read_text()) if args.json and args.json.exists() else {"candidates": {}}
        res["candidates"][args.name] = cand
    return save_and_print(res, None if args.from_json else args.json, markdown)


if __name__ == "__main__":
    sys.exit(main())
