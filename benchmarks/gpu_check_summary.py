"""benchmarks/gpu_check.sh's last step: its work folder → one summary.json.

    python benchmarks/gpu_check_summary.py WORK OUT.json DEVICE SECONDS_PER_RUN

WORK holds steps.jsonl (one line per step: name, exit code, seconds), runs/ (the two trainings) and
score-<run>-latest.json / score-<run>-common.json (`sagan evaluate --swd --mirror --json` of each). The
summary has the environment, every step, and per training: the steps and images reached, the images/s
of its last logged steps, and its scores.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

SCORE_KEYS = ("step", "swd", "swd_floor", "mirror_error", "mirror_error_real", "num_gen", "seconds")


def training(run: Path) -> dict:
    """Steps, images and speed of one run, from its metrics.jsonl and config.json."""
    records = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:  # a torn last line
            continue
        if isinstance(rec, dict) and "kind" not in rec:
            records.append(rec)
    config = json.loads((run / "config.json").read_text())
    last = records[-1] if records else {}
    ckpt = run / "checkpoints" / "latest.pt"  # where the run stopped (the log may end before it: --log-every)
    if ckpt.exists():
        import torch

        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        last = {**last, "step": int(state["step"]), "images_seen": int(state["images_seen"])}
    rates = [r["img_per_s"] for r in records[1:] if "img_per_s" in r]  # the first logged rate includes compiling
    tail = rates[-5:]
    return {"run": run.name, "amp": config["train"].get("amp"), "compile": config["train"].get("compile"),
            "amp_dtype": config.get("amp_dtype"), "steps": last.get("step", 0), "images_seen": last.get("images_seen", 0),
            "img_per_s_last": round(sum(tail) / len(tail), 1) if tail else None, "d_loss": last.get("d_loss"),
            "g_loss": last.get("g_loss")}


def score(path: Path) -> dict | None:
    if not path.exists() or not path.stat().st_size:
        return None
    res = json.loads(path.read_text())
    return {k: res[k] for k in SCORE_KEYS if k in res}


def summarise(work: Path, device: str, seconds: float) -> dict:
    from bench_measure import environment
    import torch

    steps = [json.loads(x) for x in (work / "steps.jsonl").read_text().splitlines() if x.strip()]
    out = {"environment": environment(torch.device(device)), "seconds_per_training": seconds, "steps": steps,
           "trainings": {}}
    for name in ("defaults", "fp32-eager"):
        runs = sorted((work / "runs").glob(f"*-{name}")) if (work / "runs").exists() else []
        if not runs:
            continue
        entry = training(runs[0])
        entry["score_latest"] = score(work / f"score-{name}-latest.json")
        entry["score_common_step"] = score(work / f"score-{name}-common.json")
        out["trainings"][name] = entry
    out["passed"] = all(s["rc"] == 0 for s in steps)
    return out


def main(argv=None) -> int:
    work, out, device, seconds = (argv or sys.argv[1:])[:4]
    res = summarise(Path(work), device, float(seconds))
    Path(out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "environment"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
