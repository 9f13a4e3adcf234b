"""Metrics during training: an evaluation every ``--eval-every`` steps, its record, and ``best.pt``.

The train layer does not know the metrics (they live above it, in ``sagan_cli.metrics``): the command
hands the Trainer an ``Evaluator``, a callable that scores a generator and says which way each metric
is better. Here is only the schedule and the bookkeeping:

* rank 0 scores the generator samples are drawn from (the EMA copy when there is one) while the other
  ranks wait at a barrier;
* the record goes to metrics.jsonl as ``{"kind": "eval", "during_training": true, "step": ...}`` with the
  seconds it took and the share of the run's wall time evaluations have taken so far;
* the first metric of ``--eval-metrics`` decides ``checkpoints/best.pt`` (written atomically, the whole
  resumable state plus the record); the best value so far is part of every checkpoint, so a resumed
  run keeps comparing against it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol




class Evaluator(Protocol):
    metrics: tuple[str, ...]  # the names, in the order given; the first decides best.pt
    key: str  # the record key of the first metric's value (e.g. "swd", "fid", "kid_mean")
    lower_is_better: bool

    def __call__(self, G, step: int) -> dict:
        """The metric keys and values for this generator (it must not change G)."""


@dataclass
class Best:
    key: str
    value: float
    step: int

    def to_dict(self) -> dict:
        return {"key": self.key, "value": self.value, "step": self.step}

    @classmethod
    def from_dict(cls, d) -> "Best | None":
        try:
            return cls(str(d["key"]), float(d["value"]), int(d["step"]))
        except (KeyError, TypeError, ValueError):
            return None


class DuringTraining:
    """The evaluations of one run: when they are due, what they record, and which checkpoint is best."""

    def __init__(self, evaluator: Evaluator, every: int, best: dict | None = None):
        self.evaluator, self.every = evaluator, every
        restored = Best.from_dict(best) if best else None
        self.best = restored if restored is not None and restored.key == evaluator.key else None
        self.spent_s = 0.0
        self._started = time.perf_counter()

    def due(self, step: int, final: bool) -> bool:
        return step % self.every == 0 or final

    def improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best.value if self.evaluator.lower_is_better else value > self.best.value

    def evaluate(self, G, step: int, images_seen: int) -> tuple[dict, bool]:
        """(the record, whether it is a new best); rank 0 only."""
        t0 = time.perf_counter()
        values = self.evaluator(G, step)
        took = time.perf_counter() - t0
        self.spent_s += took
        wall = max(time.perf_counter() - self._started, 1e-9)
        record = {"kind": "eval", "during_training": True, "step": step, "images_seen": images_seen,
                  "metrics": list(self.evaluator.metrics), **values, "eval_s": round(took, 3),
                  "eval_share": round(self.spent_s / wall, 4)}
        value = values.get(self.evaluator.key)
        new_best = isinstance(value, (int, float)) and self.improves(float(value))
        if new_best:
            self.best = Best(self.evaluator.key, float(value), step)
        if self.best is not None:
            record["best"] = self.best.to_dict()
        return record, new_best


def summary(record: dict, key: str) -> str:
    """One line for the console: 'step 500: eval swd 41.2 (best 38.9 at step 250), 12.0 s, 6 % of the run'."""
    best = record.get("best") or {}
    value = record.get(key)
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    where = "new best" if best.get("step") == record["step"] else f"best {best.get('value', float('nan')):.4g} at step {best.get('step')}"
    return (f"step {record['step']}: eval {key} {shown} ({where}), {record['eval_s']:.1f} s, "
            f"{100 * record['eval_share']:.0f} % of the run so far")


