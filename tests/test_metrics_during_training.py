"""`sagan train --eval-every`: the real metrics through the evaluate pipeline, on a G in memory."""

from __future__ import annotations

import json

import torch

from conftest import TINY, assert_one_line_error
from metrics_helpers import home  # noqa: F401  (a fixture: an empty HOME, so no weights file is found)


def _evals(run):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r.get("kind") == "eval"]


def test_swd_every_two_steps_records_keeps_best_and_needs_no_weights(cli, tiny_dataset, tmp_path, home):
    r = cli("train", *TINY, "--data", tiny_dataset, "--steps", "4", "--batch", "8", "--ema-start", "1",
            "--eval-every", "2", "--eval-num", "8")
    assert r.code == 0, r.stderr
    run = tmp_path / "runs/00000-tiny-32"
    records = _evals(run)
    assert [x["step"] for x in records] == [2, 4]
    for x in records:
        assert x["during_training"] and x["metrics"] == ["swd"] and x["swd"] > 0 and x["swd_floor"] > 0
        assert "swd_32" in x and "swd_16" in x and x["eval_s"] > 0
    best = torch.load(run / "checkpoints/best.pt", weights_only=True)
    assert best["best"]["key"] == "swd" and best["best"]["step"] == min(records, key=lambda x: x["swd"])["step"]
    assert "eval swd" in r.stdout and "best.pt" in r.stdout


def test_the_same_generator_scores_as_evaluate_scores_its_checkpoint(cli, tiny_dataset, tmp_path, home):
    """Evaluation 2 of the run = `sagan evaluate --swd` of the step-2 checkpoint on the same counts."""
    r = cli("train", *TINY, "--data", tiny_dataset, "--steps", "2", "--batch", "8", "--ema-start", "1",
            "--eval-every", "2", "--eval-num", "8")
    assert r.code == 0, r.stderr
    run = tmp_path / "runs/00000-tiny-32"
    [during] = _evals(run)
    r = cli("evaluate", run / "checkpoints/step-0000002.pt", "--swd", "-n", "8", "--num-real", "8", "--json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["swd"] == during["swd"]


def test_bad_eval_options_are_refused_before_a_run_exists(cli, tiny_dataset, tmp_path, home):
    base = ("train", *TINY, "--data", tiny_dataset, "--steps", "2", "--batch", "8", "--eval-every", "1")
    assert_one_line_error(cli(*base, "--eval-metrics", "swd,bogus"), "unknown metric bogus")
    assert_one_line_error(cli(*base, "--eval-metrics", "fid"), "FID Inception weights were not found")
    assert not (tmp_path / "runs").exists()
