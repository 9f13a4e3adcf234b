"""`sagan evaluate` of a class-conditional checkpoint: ``--class`` (one class, the real side restricted to
that class's images when the data is labelled) and ``--per-class`` (intra-class values, one evaluation per
class whose counts allow it, the others skipped with the reason).

Without either, a conditional checkpoint's image i is drawn in seed SEED+i's uniform class
(inspect/classes.py), as `sagan sample` draws that seed, against all the real images.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from sagan_cli.metrics.table import METRICS, chosen
from sagan_cli.util.errors import SaganError


def resolve(spec: str | None, state: dict, cfg) -> tuple[int | None, dict]:
    """(class id or None, what the eval record says about the labels)."""
    from sagan_cli.inspect.classes import class_names, parse_classes

    if not cfg.num_classes:
        if spec is not None:
            parse_classes(spec, [])  # the one-line refusal of an unconditional checkpoint
        return None, {}
    if spec is None:
        return None, {"labels": "uniform"}
    names = class_names(state, cfg.num_classes)
    ids = parse_classes(spec, names)
    if len(ids) != 1:
        raise SaganError(f"--class {spec}: evaluate scores one class at a time; give one, or --per-class for every class")
    return ids[0], {"class": ids[0], "class_name": names[ids[0]]}


def real_pool(ds, klass: int | None, data, warn) -> tuple[np.ndarray | None, str]:
    """The rows of ``ds`` that are class ``klass`` (None: all rows) and a tag for the statistics cache key."""
    if klass is None:
        return None, ""
    if ds.labels is None:
        warn(f"--class {klass}: {data} has no labels, so the real side is all of its images, not that class's")
        return None, ""
    pool = np.flatnonzero(np.asarray(ds.labels) == klass)
    if len(pool) == 0:
        raise SaganError(f"--class {klass}: {data} holds no image of that class")
    return pool, f"class{klass}:"


def _min_counts(metrics) -> tuple[int, int]:
    entries = [METRICS[m] for m in metrics]
    return (max(m.min_gen for m in entries),
            max((m.min_real for m in entries if m.needs_real), default=0))


def per_class(req, console, say: Callable[[str], None], warn: Callable[[str], None]) -> dict:
    """One evaluation per class: {"kind": "eval-per-class", "classes": [record...], "skipped": [...]}."""
    from sagan_cli.data.dataset import open_dataset
    from sagan_cli.inspect.classes import class_names
    from sagan_cli.metrics.evaluate import score
    from sagan_cli.models.load import model_config
    from sagan_cli.train.checkpoint import load_checkpoint
    from sagan_cli.train.runs import resolve_checkpoint_arg

    if req.samples is not None or req.generator is not None:
        raise SaganError("--per-class scores a checkpoint's generator class by class; it has no effect with --samples")
    if req.real_stats is not None:
        raise SaganError("--per-class compares each class with that class's real images: pass --data DIR, not --real-stats")
    if req.klass is not None:
        raise SaganError("--class and --per-class conflict: --class scores one class, --per-class every class")
    path = resolve_checkpoint_arg(req.ckpt, req.outdir)
    state = load_checkpoint(path)
    cfg = model_config(state)
    if not cfg.num_classes:
        raise SaganError("--per-class: this checkpoint's generator is unconditional (trained without labels); drop --per-class")
    data = req.data or ((state.get("data") or {}).get("path"))
    if not data:
        raise SaganError("--per-class needs the labelled dataset the classes come from: pass --data DIR")
    ds = open_dataset(data)
    if ds.labels is None:
        raise SaganError(f"--per-class needs labelled real images: {data} has no labels (prepare it with its classes)")
    names = class_names(state, cfg.num_classes)
    counts = np.bincount(np.asarray(ds.labels, dtype=np.int64), minlength=cfg.num_classes)[: cfg.num_classes]
    metrics = chosen(req.metrics)
    min_gen, min_real = _min_counts(metrics)
    records, skipped = [], []
    for c, name in enumerate(names):
        real_n = int(counts[c]) if req.num_real is None else min(int(counts[c]), req.num_real)
        gen_n = req.num_gen or max(real_n, min_gen)
        if real_n < min_real:
            skipped.append({"class": c, "class_name": name, "reason": f"{real_n} real images, the metrics need at least {min_real}"})
            continue
        say(f"class {c} ({name}): {gen_n} generated against {real_n} real images")
        one = dataclasses.replace(req, ckpt=str(path), data=ds.path, klass=str(c), num_gen=gen_n,
                                  num_real=None if req.num_real is None or req.num_real >= counts[c] else req.num_real)
        record, values, _ = score(one, console, say, warn)
        records.append(record)
    if not records:
        raise SaganError(f"--per-class: no class has the {min_real} real images the metrics need (the largest has "
                         f"{int(counts.max())}); lower the metrics' needs or add images")
    for s in skipped:
        warn(f"class {s['class']} ({s['class_name']}) skipped: {s['reason']}")
    keys = [k for k in records[0] if k in values]
    return {"kind": "eval-per-class", "checkpoint": str(path), "metrics": list(metrics), "keys": keys,
            "classes": records, "skipped": skipped}


def print_per_class(result: dict, console) -> None:
    from rich.table import Table

    table = Table(title="sagan evaluate --per-class", title_justify="left", header_style="bold")
    for col in ["class", "name", "generated", "real", *result["keys"]]:
        table.add_column(col, justify="right" if col not in ("name",) else "left")
    for r in result["classes"]:
        cells = [str(r["class"]), r["class_name"], str(r["num_gen"]), str(r.get("num_real"))]
        table.add_row(*cells, *(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in result["keys"]))
    console.print(table)
    for s in result["skipped"]:
        console.print(f"skipped: class {s['class']} ({s['class_name']}): {s['reason']}", markup=False, highlight=False)
