"""Evaluations during training (train/evaluation.py): the schedule, the records, best.pt and resume.

A toy evaluator stands in for the metrics here (the train layer does not know them); the real ones
through `sagan train --eval-every` are tested in tests/test_metrics_during_training.py.
"""

from __future__ import annotations

import io
import json

import torch
from rich.console import Console

from sagan_cli.train.checkpoint import BEST
from sagan_cli.train.evaluation import DuringTraining
from sagan_cli.train.log import TrainLogger
from sagan_cli.train.session import prepare_run

SCORES = {2: 5.0, 4: 3.0, 6: 4.0, 8: 1.0, 10: 2.0}  # lower is better: bests at 2, 4 and 8


class Toy:
    metrics, key, lower_is_better = ("toy",), "toy", True

    def __init__(self):
        self.seen = []

    def __call__(self, G, step):
        self.seen.append((step, G.training))
        return {"toy": SCORES[step]}


def _trainer(tmp_path, data, steps=10, resume=None):
    trainer = prepare_run(
        model_opts=dict(imsize=32, z_dim=32, g_conv_dim=16, d_conv_dim=16),
        train_opts=dict(steps=steps, batch=8, log_every=5, ckpt_every=2, sample_every=100, ema_start=1, eval_every=2),
        explicit={"steps"} if resume else set(), resume=resume, outdir=tmp_path / "runs", data=data, device_spec="cpu",
        say=lambda s: None)
    toy = Toy()
    trainer.attach_evaluator(toy, 2)
    logger = TrainLogger(trainer.run_dir, steps, trainer.step, False, console=Console(file=io.StringIO(), width=200))
    return trainer, logger, toy


def _evals(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r.get("kind") == "eval"]


def test_records_at_each_due_step_and_best_pt_holds_the_best_state(tmp_path, tiny_dataset):
    trainer, logger, toy = _trainer(tmp_path, tiny_dataset)
    trainer.run(logger)
    logger.close()
    assert [s for s, _ in toy.seen] == [2, 4, 6, 8, 10]
    records = _evals(trainer.run_dir)
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10] and all(r["during_training"] for r in records)
    assert [r["best"]["step"] for r in records] == [2, 4, 4, 8, 8]
    assert all(r["eval_s"] >= 0 and 0 <= r["eval_share"] <= 1 for r in records)
    best = torch.load(trainer.run_dir / "checkpoints" / BEST, weights_only=True)
    assert best["step"] == 8 and best["best"] == {"key": "toy", "value": 1.0, "step": 8}
    step8 = torch.load(trainer.run_dir / "checkpoints/step-0000008.pt", weights_only=True)
    for k in step8["G_ema"]:
        assert torch.equal(best["G_ema"][k], step8["G_ema"][k]), k
    log = (trainer.run_dir / "log.txt").read_text()
    assert "step 8: eval toy 1 (new best)" in log and "step 6: eval toy 4 (best 3 at step 4)" in log


def test_a_resumed_run_keeps_comparing_against_the_best_so_far(tmp_path, tiny_dataset):
    trainer, logger, _ = _trainer(tmp_path, tiny_dataset, steps=6)
    trainer.run(logger)
    logger.close()
    trainer.run_lock.release()  # as the command does when it ends
    assert torch.load(trainer.run_dir / "checkpoints" / BEST, weights_only=True)["step"] == 4
    latest = trainer.run_dir / "checkpoints/latest.pt"
    resumed, logger, toy = _trainer(tmp_path, tiny_dataset, steps=10, resume=str(latest))
    assert resumed.evals.best.step == 4 and resumed.evals.best.value == 3.0
    resumed.run(logger)
    logger.close()
    assert [s for s, _ in toy.seen] == [8, 10]
    assert torch.load(resumed.run_dir / "checkpoints" / BEST, weights_only=True)["step"] == 8
    assert [r["step"] for r in _evals(resumed.run_dir)] == [2, 4, 6, 8, 10]  # none twice


def test_records_past_the_resumed_checkpoint_are_dropped_like_log_records(tmp_path):
    from sagan_cli.train.metrics_file import trim_for_resume

    path = tmp_path / "metrics.jsonl"
    lines = [{"step": 2}, {"kind": "eval", "during_training": True, "step": 2}, {"step": 4},
             {"kind": "eval", "during_training": True, "step": 4}, {"kind": "eval", "step": 4, "checkpoint": "x"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    trim_for_resume(path, 2)
    kept = [json.loads(x) for x in path.read_text().splitlines()]
    assert kept == [lines[0], lines[1], lines[4]]  # an evaluate command's record stays wherever it is


def test_a_best_for_another_metric_is_not_carried_over():
    class Other(Toy):
        key = "other"

    assert DuringTraining(Other(), 2, {"key": "toy", "value": 1.0, "step": 4}).best is None
    assert DuringTraining(Toy(), 2, {"key": "toy", "value": 1.0, "step": 4}).best.value == 1.0
    assert not DuringTraining(Toy(), 2).improves(float("nan"))
