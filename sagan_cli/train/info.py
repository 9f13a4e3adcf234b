"""`sagan info`: what a checkpoint (or a run's newest one) holds, as one dict and as lines for a terminal.

Nothing is trained or drawn: the file is opened the way every command opens it (``weights_only=True``,
refused in one line when torn or foreign), the networks are built once to count their parameters, and
the run's ``metrics.jsonl`` (the run directory the checkpoint sits in) gives the last training record and
the evaluations up to the checkpoint's step. An exported generator (``sagan export``) is described too:
its model and where it came from, no training state.
"""

from __future__ import annotations

import math
from pathlib import Path

from sagan_cli.train.runs import run_dir_of


def describe(path: Path, state: dict) -> dict:
    """Everything `sagan info --json` prints for the checkpoint ``state`` read from ``path``."""
    mcfg = state.get("model_config") or {}
    info = {
        "path": str(path),
        "file_bytes": path.stat().st_size,
        "kind": state.get("format"),
        "format_version": state.get("format_version"),
        "tool_version": state.get("tool_version"),
        "torch_version": state.get("torch_version"),
        "step": state.get("step"),
        "images_seen": state.get("images_seen"),
        "epoch": (state.get("sampler") or {}).get("epoch"),
        "world_size": state.get("world_size"),
        "model": dict(mcfg),
        "parameters": _parameters(state, with_d=state.get("format") != "sagan-generator"),
        "ema": state.get("G_ema") is not None if "G_ema" in state else state.get("ema"),
        "train": state.get("train_config"),
        "data": state.get("data"),
        "lr": {k: v["param_groups"][0]["lr"] for k, v in (("g", state.get("opt_G")), ("d", state.get("opt_D")))
               if isinstance(v, dict) and v.get("param_groups")} or None,
        "best": state.get("best"),
    }
    if isinstance(state.get("parent"), dict):  # a fine-tuned run (train --init-from): what it started from
        info["parent"] = state["parent"]
    if "source" in state:  # an exported generator: what it was exported from
        info["source"] = state["source"]
    info.update(_logged(path, state.get("step")))
    return info


def _parameters(state: dict, with_d: bool) -> dict | None:
    """{'G': n, 'D': n} learnable parameters of the model the checkpoint describes (an export: G alone; None if
    it cannot be built)."""
    from sagan_cli.models import build
    from sagan_cli.models.config import ModelConfig
    from sagan_cli.util.errors import SaganError

    try:
        G, D = build(ModelConfig.from_dict(state["model_config"]))
    except (SaganError, KeyError, TypeError, ValueError):
        return None
    counts = {"G": sum(p.numel() for p in G.parameters()), "D": sum(p.numel() for p in D.parameters())}
    return counts if with_d else {"G": counts["G"]}


def _logged(path: Path, step) -> dict:
    """The last training record and the evaluations at or before ``step`` in the run's metrics.jsonl."""
    from sagan_cli.train.curves import read_metrics

    metrics = run_dir_of(path) / "metrics.jsonl"
    out = {"metrics_file": None, "last_log": None, "evals": []}
    if not metrics.is_file() or not isinstance(step, int):
        return out
    try:
        records = read_metrics(metrics)
    except OSError:
        return out
    out["metrics_file"] = str(metrics)
    steps = records.columns.get("step")
    if steps is not None and len(steps):
        rows = [i for i, s in enumerate(steps) if s <= step]
        if rows:
            i = rows[-1]
            out["last_log"] = {k: (int(v[i]) if k in ("step", "steps", "images_seen", "epoch") else float(v[i]))
                               for k, v in records.columns.items() if not math.isnan(v[i])}
    out["evals"] = [r for r in records.evals if r["step"] <= step]
    return out


# ------------------------------------------------------------------ for a terminal
def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


EVAL_SKIP = {"kind", "step", "images_seen", "during_training", "best", "time", "eval_s", "eval_share", "ema", "checkpoint"}


def lines(info: dict) -> list[str]:
    """`sagan info` without --json."""
    m, t, d = info["model"], info["train"] or {}, info["data"] or {}
    out = [f"{info['path']}: {_size(info['file_bytes'])}, "
           f"{'exported generator' if info['kind'] == 'sagan-generator' else 'checkpoint'} format {info['format_version']}, "
           f"written by sagan {info['tool_version'] or '?'} (torch {info['torch_version'] or '?'})"]
    if "source" in info:
        src = info["source"]
        out.append(f"exported from {src.get('checkpoint')} ({'EMA' if src.get('ema') else 'raw'} G"
                   f"{', standing statistics' if src.get('standing_stats') else ''})")
    progress = f"step {info['step']}"
    if t.get("steps"):
        progress += f" of {t['steps']}"
    if info["images_seen"] is not None:
        progress += f", {info['images_seen']:,} images seen"
    if info["epoch"] is not None:
        progress += f" (epoch {info['epoch']})"
    out.append(progress)
    classes = m.get("num_classes") or 0
    names = d.get("classes")
    cls = f"{classes} classes" + (f" ({', '.join(map(str, names[:8]))}{', ...' if len(names) > 8 else ''})" if names else "") \
        if classes else "unconditional"
    out.append(f"model: {m.get('arch', 'dcgan')} {m.get('imsize')}px, z {m.get('z_dim')}, G width {m.get('g_conv_dim')}, "
               f"D width {m.get('d_conv_dim')}, {m.get('attention') or 'paper'} attention at G "
               f"{','.join(map(str, m.get('g_attn') or [])) or 'none'} / D {','.join(map(str, m.get('d_attn') or [])) or 'none'}, {cls}")
    p = info["parameters"]
    if p and "D" not in p:
        out.append(f"parameters: G {p['G']:,} (no D in an exported generator)")
    elif p:
        out.append(f"parameters: G {p['G']:,}, D {p['D']:,}" + ("" if info["ema"] is None else
                                                                 f"; EMA generator {'kept' if info['ema'] else 'not kept'}"))
    if t:
        lr = info["lr"] or {}
        now = f" (now {_num(lr['g'])} / {_num(lr['d'])})" if lr and t.get("lr_decay", 1) < 1 else ""
        decay = f", lr x{t['lr_decay']} every {t['lr_decay_every']} steps{now}" if t.get("lr_decay", 1) < 1 else ""
        gp = f" (gp weight {_num(t.get('gp_weight'))})" if t.get("loss") == "wgan-gp" else ""
        ema = f"{t.get('ema_decay')} from step {t.get('ema_start')}" if t.get("ema", True) else "off"
        n_dis = t.get("n_dis", 1)
        aug = ", ".join((["mirror"] if t.get("mirror") else []) + ([f"diffaug {t['diffaug']}"] if t.get("diffaug") else []))
        out.append(f"training: loss {t.get('loss', 'hinge')}{gp}, {n_dis} D step{'s' if n_dis > 1 else ''} per G step, batch {t.get('batch')}, "
                   f"lr G {_num(t.get('lr_g'))} / D {_num(t.get('lr_d'))}{decay}, betas {t.get('beta1')}, {t.get('beta2')}, "
                   f"EMA {ema}, seed {t.get('seed')}" + (f", augmentation {aug}" if aug else ""))
    if d:
        out.append(f"data: {d.get('path')} ({d.get('count')} images, {d.get('fingerprint')})")
    parent = info.get("parent")
    if parent:
        out.append(f"fine-tuned from: {parent.get('checkpoint')} (step {parent.get('step')}, sha256 {str(parent.get('sha256'))[:16]}…"
                   f"{', its Adam moments kept' if parent.get('keep_optim') else ''})")
    log = info["last_log"]
    if log:
        keys = [k for k in log if k not in ("step", "steps", "images_seen", "epoch", "time")]
        out.append(f"last log (step {log['step']}): " + ", ".join(f"{k} {_num(log[k])}" for k in keys))
    elif info.get("metrics_file") is None and "source" not in info:
        out.append("last log: no metrics.jsonl beside this checkpoint's run")
    if info["evals"]:
        e = info["evals"][-1]
        vals = ", ".join(f"{k} {_num(v)}" for k, v in e.items() if k not in EVAL_SKIP and isinstance(v, (int, float)))
        out.append(f"last eval (step {e['step']}, {len(info['evals'])} in all): {vals}")
    best = info["best"]
    if isinstance(best, dict) and best.get("key") is not None:
        out.append(f"best {best.get('key')}: {_num(best.get('value'))} at step {best.get('step')}")
    return out
