"""The evaluator `sagan train --eval-every` hands the Trainer (train/evaluation.py's ``Evaluator``).

Each call scores a copy of the generator, with standing statistics as `sagan evaluate` uses by default,
through the same pipeline as `sagan evaluate` (``metrics.evaluate.evaluate`` with the generator given in
memory): the same protocol, the same checks, the Inception statistics of the real subset from the cache
after the first evaluation. The real side is a fixed subset of the training set, as many images as are
generated (``--eval-num``), so every evaluation of a run compares like with like.
"""

from __future__ import annotations

import copy
from pathlib import Path

from sagan_cli.metrics.table import METRICS
from sagan_cli.util.errors import SaganError


def parse_metrics(text: str) -> tuple[str, ...]:
    """'swd,fid' → ('swd', 'fid'): known names, each once, in the order given (the first decides best.pt)."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in METRICS]
    if not names or unknown:
        raise SaganError(f"--eval-metrics {text!r}: {'unknown metric ' + ', '.join(unknown) if unknown else 'no metric'}; "
                         f"choose from {', '.join(METRICS)}")
    return names


def check(text: str, weights: Path | None) -> tuple[str, ...]:
    """The metric names of ``--eval-metrics``, after checking that the Inception weights are there if needed."""
    names = parse_metrics(text)
    if any(METRICS[n].needs_inception for n in names):
        from sagan_cli.metrics.evaluate import Request, find_weights

        if find_weights(Request(metrics=names, weights=weights)) is None:
            raise SaganError(f"--eval-metrics {','.join(names)} needs the FID Inception weights: pass "
                             "--inception-weights FILE (or set SAGAN_INCEPTION_WEIGHTS); `sagan evaluate "
                             "--download-weights` fetches them once")
    return names


class InTraining:
    """Scores a generator during training; ``key`` and ``lower_is_better`` come from the first metric."""

    def __init__(self, names: tuple[str, ...], data: Path, num: int, device: str, *, num_real: int, train_batch: int, cfg,
                 weights: Path | None, standing: bool = True, batch: int = 64, warn=lambda text: None):
        from sagan_cli.metrics.evaluate import Request, check_conflicts, find_weights

        check(",".join(names), weights)
        self.metrics, self.cfg = names, cfg
        first = METRICS[names[0]]
        self.key, self.lower_is_better = first.headline, first.lower_is_better
        self.train_batch, self.standing, self.warn = train_batch, standing, warn
        self.request = Request(metrics=names, data=Path(data), num_gen=num, num_real=num_real, weights=weights,
                               batch=batch, device=device)
        check_conflicts(self.request)
        if any(METRICS[n].needs_inception for n in names):
            self.request.weights = find_weights(self.request)

    def __call__(self, G, step: int) -> dict:
        import dataclasses

        from rich.console import Console

        from sagan_cli.metrics.evaluate import score
        from sagan_cli.models.standing import apply_standing_stats

        net = copy.deepcopy(G).eval().requires_grad_(False)
        if self.standing:
            apply_standing_stats(net, self.cfg.z_dim, self.train_batch)
        request = dataclasses.replace(self.request, generator=(net, self.cfg, f"the step-{step} generator"))
        quiet = Console(quiet=True)
        _, values, _ = score(request, quiet, say=lambda text: None, warn=self.warn)
        return values
