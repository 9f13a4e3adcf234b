"""`make demo`: the whole workflow on the built-in synthetic dataset, on CPU.

prepare synthetic (32 px) → train → sample → attention map → evaluate (SWD and the mirror error, no
download). Outputs go under demo/. SAGAN_DEMO_STEPS / SAGAN_DEMO_COUNT shrink it (the test suite runs it
that way).

The settings come from the candidates of docs/fidelity.md (benchmarks/demo_search.py): the paper's model
shape (SAGAN at 32 px, attention in G and D, hinge loss, Adam betas (0, 0.9)) at conv width 32, with a
learning rate of 4e-4 for both G and D (the paper's TTUR gives G 1e-4, which learns the scenes several
times slower here) and batch 32 (per step it learns as fast as batch 64, at nearly twice the steps per
CPU-second), and an EMA generator (decay 0.999) started half-way. The final scores are printed beside the
data's own values and the targets issue #16 set (mirror error ≤ 0.04, SWD ≤ 1.6× the real-vs-real floor).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STEPS = int(os.environ.get("SAGAN_DEMO_STEPS", "1800"))
COUNT = int(os.environ.get("SAGAN_DEMO_COUNT", "6000"))
OUT = Path(os.environ.get("SAGAN_DEMO_DIR", "demo"))
WIDTH = 32  # G and D conv dim
BATCH = 32
LR = 4e-4  # G and D
EMA_DECAY = 0.999
EVAL_NUM = 2048  # generated images scored, and as many real ones (SWD compares 1024 with 1024, and its floor)
TARGET_MIRROR, TARGET_SWD_RATIO = 0.04, 1.6


class Interrupted(Exception):
    """Ctrl-C reached the demo while a step ran; that step has been let finish its own way."""


def sagan(*args, capture: bool = False) -> str | None:
    """Run one `sagan` command and wait for it, Ctrl-C included.

    The command runs in its own process group, so a Ctrl-C at the terminal reaches only this script,
    which hands it on exactly once and waits: `sagan train` then writes its checkpoint and exits 0
    (a second SIGINT, or a kill after a short wait as subprocess.run does, would lose it).
    ``capture``: return its stdout instead of showing it."""
    cmd = [sys.executable, "-m", "sagan_cli", *map(str, args)]
    print(f"\n$ sagan {' '.join(map(str, args))}", flush=True)
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE if capture else None, text=True)
    asked: list[int] = []

    def forward(signum, _frame):
        if not asked:
            asked.append(signum)
            proc.send_signal(signum)

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        out = proc.communicate()[0] if capture else None
        code = proc.wait()
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if asked:
        raise Interrupted(f"sagan {args[0]}")
    if code:
        raise subprocess.CalledProcessError(code, cmd)
    return out


def quality(scores: dict) -> str:
    """The final generator's scores, next to the data's values and the targets."""
    mirror, swd, floor = scores["mirror_error"], scores["swd"], scores["swd_floor"]
    return (f"quality of the final (EMA) generator, {scores['num_gen']} images (docs/fidelity.md):\n"
            f"  mirror error {mirror:.4f}   (the data's: {scores.get('mirror_error_real', 0.0):.4f}; target ≤ {TARGET_MIRROR}: "
            f"{'met' if mirror <= TARGET_MIRROR else 'not met'})\n"
            f"  SWD ×1e3     {swd:.2f}   (real-vs-real floor {floor:.2f}: {swd / floor:.2f}× the floor; target ≤ "
            f"{TARGET_SWD_RATIO}×: {'met' if swd <= TARGET_SWD_RATIO * floor else 'not met'})")


def main() -> int:
    t0 = time.time()
    data = OUT / "data" / "synthetic-32"
    runs = OUT / "runs"
    every = max(STEPS // 4, 1)
    print(f"demo: {STEPS} training steps of batch {BATCH} on the CPU (conv width {WIDTH}); `sagan train` prints how long "
          "they take on this machine after its first logged step", flush=True)
    try:
        sagan("prepare", "synthetic", "--imsize", 32, "--count", COUNT, "--out", data, "--preview")
        sagan("train", "--imsize", 32, "--data", data, "--steps", STEPS, "--batch", BATCH, "--device", "cpu",
              "--g-conv-dim", WIDTH, "--d-conv-dim", WIDTH, "--runs", runs, "--name", "demo",
              "--log-every", max(STEPS // 12, 1), "--sample-every", every, "--ckpt-every", every,
              "--lr-g", LR, "--lr-d", LR, "--ema-decay", EMA_DECAY, "--ema-start", STEPS // 2)
        run = sorted(p for p in runs.iterdir() if p.is_dir())[-1]
        ckpt = run / "checkpoints" / "latest.pt"
        sagan("sample", ckpt, "--seeds", "0-63", "--out", OUT / "samples.png")
        sagan("sample", ckpt, "--interpolate", 8, "--seeds", "0-4", "--out", OUT / "interpolation.png")
        sagan("attn-map", ckpt, "--query", "8,8", "--query", "16,24", "--seeds", "0-2",
              "--out", OUT / "attn-map.png", "--save-maps", OUT / "attn-maps.npz")
        num = min(EVAL_NUM, COUNT)
        scores = json.loads(sagan("evaluate", ckpt, "--data", data, "--swd", "--mirror", "-n", num,
                                  "--num-real", num, "--device", "cpu", "--json", capture=True))
    except subprocess.CalledProcessError as exc:
        print(f"demo failed at: {' '.join(map(str, exc.cmd[2:]))}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        print(f"demo interrupted during `{exc}` (it stopped cleanly: a training run keeps its checkpoint under "
              f"{runs}); run `make demo` again to start over", file=sys.stderr)
        return 130
    print("\n" + quality(scores))
    print(f"\ndemo finished in {time.time() - t0:.0f} s. Outputs:")
    for label, path in [
        ("dataset", data), ("dataset preview", data / "preview.png"), ("run directory", run),
        ("training samples", run / "samples"), ("checkpoint", ckpt), ("sample grid", OUT / "samples.png"),
        ("interpolations", OUT / "interpolation.png"), ("attention map", OUT / "attn-map.png"),
        ("raw attention maps", OUT / "attn-maps.npz"),
    ]:
        print(f"  {label:<20} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
