"""What standing statistics change: one checkpoint's generator sampled three ways.

* ``eval``: eval mode with the BatchNorm running statistics the checkpoint holds (for the EMA
  generator: statistics averaged along with the weights);
* ``standing``: eval mode after ``apply_standing_stats`` (statistics re-estimated for these weights,
  16 passes at the training batch, the default of ``sample``, ``attn-map`` and ``evaluate``);
* ``batch``: BatchNorm in train mode, normalising by the statistics of the batch drawn (no running
  statistics at all; the images then depend on which other images are in the batch).

Reported per mode, over ``--num`` images on [0, 1] pixels: the pixel standard deviation, the mean
|x − fliplr(x)| (the "mirror error": 0 on the built-in synthetic data, whose images are mirror
symmetric), and the mean |Δpixel| against the standing images; the same statistics of ``--data``'s
real images for reference.

    python benchmarks/standing_bench.py runs/00000-demo/checkpoints/latest.pt --data demo/data/synthetic-32
    python benchmarks/standing_bench.py CKPT --data DIR --json docs/perf/standing-stats-cpu.json

Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _stats(x, reference=None) -> dict:
    out = {"pixel_std": round(float(x.std()), 4), "mirror_error": round(float((x - x.flip(-1)).abs().mean()), 4)}
    if reference is not None:
        out["mean_abs_diff_vs_standing"] = round(float((x - reference).abs().mean()), 4)
    return out


def measure(ckpt: Path, data: Path | None, num: int, use_ema: bool) -> dict:
    import numpy as np
    import torch

    from sagan_cli.data.dataset import open_dataset
    from sagan_cli.inspect.sample import latent
    from sagan_cli.models.load import load_generator
    from sagan_cli.models.standing import FORWARDS, apply_standing_stats, batch_norms, training_batch
    from sagan_cli.train.checkpoint import load_checkpoint

    state = load_checkpoint(ckpt)
    G, cfg = load_generator(state, use_ema, torch.device("cpu"))
    z = torch.stack([latent(s, cfg.z_dim, None) for s in range(num)])
    unit = lambda t: (t.float().clamp(-1, 1) + 1) / 2  # noqa: E731

    with torch.no_grad():
        ev = unit(G(z))
        standing = unit(apply_standing_stats(copy.deepcopy(G), cfg.z_dim, training_batch(state))(z))
        batch = copy.deepcopy(G)
        for m in batch_norms(batch):
            m.train()
        bt = unit(batch(z))
    result = {
        "checkpoint": str(ckpt), "step": int(state.get("step", 0)), "generator": "EMA" if use_ema else "raw",
        "num": num, "standing": {"forwards": FORWARDS, "batch": training_batch(state)},
        "modes": {"eval": _stats(ev, standing), "standing": _stats(standing), "batch": _stats(bt, standing)},
        "machine": platform.platform(), "torch": torch.__version__,
    }
    if data is not None:
        ds = open_dataset(data)
        real = torch.from_numpy(np.array(ds.images[:num])).float() / 255  # N×3×S×S uint8, copied from the memmap
        result["data"] = {"path": str(data), **_stats(real)}
    return result


def render(r: dict) -> str:
    lines = [f"{r['generator']} G of {r['checkpoint']} (step {r['step']}), {r['num']} images; standing: "
             f"{r['standing']['forwards']} passes × {r['standing']['batch']}",
             f"{'mode':<10} {'pixel std':>10} {'mirror err':>11} {'|Δ| vs standing':>16}"]
    for mode, s in r["modes"].items():
        diff = s.get("mean_abs_diff_vs_standing")
        lines.append(f"{mode:<10} {s['pixel_std']:>10.4f} {s['mirror_error']:>11.4f} {'' if diff is None else f'{diff:.4f}':>16}")
    if "data" in r:
        lines.append(f"{'data':<10} {r['data']['pixel_std']:>10.4f} {r['data']['mirror_error']:>11.4f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", type=Path)
    ap.add_argument("--data", type=Path, default=None, help="prepared dataset for the real images' figures")
    ap.add_argument("--num", type=int, default=512)
    ap.add_argument("--no-ema", action="store_true")
    ap.add_argument("--json", default=None, help="also write the result as JSON to this file ('-': stdout only)")
    args = ap.parse_args(argv)
    r = measure(args.ckpt, args.data, args.num, not args.no_ema)
    if args.json == "-":
        print(json.dumps(r, indent=2))
        return 0
    print(render(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
