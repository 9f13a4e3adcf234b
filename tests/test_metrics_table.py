"""The metrics table: an entry registered in it is a metric of `sagan evaluate`, flag to metrics.jsonl.

A toy metric (the mean L2 norm of the generated pool3 features) is put into ``METRICS`` with
monkeypatch.setitem and run through the real CLI in-process, with the seeded random Inception weights
of tests/metrics_helpers.py. The built-in entries are checked against the maths modules' constants
and the record formats the report printed before there was a table.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import TINY, assert_one_line_error
from metrics_helpers import home, weights_file  # noqa: F401
from sagan_cli.metrics import isc, kid, prc, report
from sagan_cli.metrics.table import IS_SPLITS, KID_SUBSET_SIZE, KID_SUBSETS, METRICS, PR_K, Metric

torch.set_num_threads(min(2, torch.get_num_threads()))


def mean_norm(gen, real, ctx) -> dict:
    return {"norm_mean": float(np.linalg.norm(gen.pool3.astype(np.float64), axis=1).mean())}


NORM = Metric("norm", "--norm", "Mean L2 norm of the generated pool3 features (a test metric).", "norm",
              "the feature norm", compute=mean_norm, rows=lambda r: [("pool3 norm", f"{r['norm_mean']:.3f}")],
              protocol=lambda ctx: "mean L2 norm of the pool3 features, float64", min_gen=3, needs_real=False)


@pytest.fixture
def run(cli, tiny_dataset, home, tmp_path):
    """A 1-step run under ./runs (cwd is tmp_path), trained on the tiny dataset (recorded in the checkpoint)."""
    r = cli("train", *TINY, "--data", tiny_dataset, "--steps", 1, "--batch", 8)
    assert r.code == 0, r.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    return run_dir


def eval_records(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [rec for rec in map(json.loads, lines) if rec.get("kind") == "eval"]


def test_a_registered_metric_is_chosen_computed_printed_and_logged(cli, run, monkeypatch, tmp_path_factory):
    monkeypatch.setitem(METRICS, "norm", NORM)
    weights = ["--inception-weights", weights_file(tmp_path_factory), "--device", "cpu"]

    r = cli("evaluate", "--help")
    assert r.code == 0 and "--norm" in r.stdout and NORM.help in r.stdout

    # with FID: the record lists both in table order, the toy's keys after FID's
    r = cli("evaluate", "--fid", "--norm", "--num", 3, "--num-real", 4, *weights, "--json")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["metrics"] == ["fid", "norm"] and np.isfinite(res["fid"]) and res["norm_mean"] > 0
    assert list(res).index("fid") < list(res).index("norm_mean")
    assert res["protocol"]["norm"] == "mean L2 norm of the pool3 features, float64"

    # alone: it needs no real side, so none is opened; the table has its row and its protocol line
    r = cli("evaluate", "--norm", "--num", 3, *weights)
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    [row] = [line for line in lines if "pool3 norm" in line]
    assert row.split()[-2] == f"{res['norm_mean']:.3f}"  # the same seeds, the same images: the same value
    assert "norm: mean L2 norm of the pool3 features, float64" in lines
    assert not any(line.startswith("real:") for line in lines)
    assert [line.split()[1] for line in lines if line.startswith("│")] == ["pool3"]  # its row only

    first, second = eval_records(run)
    assert first["norm_mean"] == res["norm_mean"] and first["fid"] == res["fid"] and first["metrics"] == ["fid", "norm"]
    assert second["metrics"] == ["norm"] and second["norm_mean"] == res["norm_mean"] and "fid" not in second
    assert second["protocol"]["norm"] == res["protocol"]["norm"] and "real" not in second


def test_a_registered_metrics_minimum_counts_are_one_line_errors(cli, run, monkeypatch, tmp_path_factory):
    weights = ["--inception-weights", weights_file(tmp_path_factory), "--device", "cpu"]
    monkeypatch.setitem(METRICS, "norm", NORM)
    assert_one_line_error(cli("evaluate", "--norm", "--num", 2, *weights),
                          "the feature norm needs at least 3 generated images, got 2")
    monkeypatch.setitem(METRICS, "norm", dataclasses.replace(NORM, needs_real=True, min_real=5))
    assert_one_line_error(cli("evaluate", "--norm", "--num", 3, "--num-real", 4, *weights),
                          "the feature norm needs at least 5 real images, got 4")
    assert not (run / "metrics.jsonl").exists() or eval_records(run) == []


def test_an_entry_that_is_not_in_the_table_has_no_flag(cli):
    assert "norm" not in METRICS
    assert_one_line_error(cli("evaluate", "--norm"), "--norm")


def test_the_flags_are_the_tables_in_its_order_before_the_other_options(cli):
    r = cli("evaluate", "--help")
    assert r.code == 0
    where = [r.stdout.index(f"{m.flag} ") for m in METRICS.values()]
    assert [m.flag for m in METRICS.values()] == ["--fid", "--is", "--kid", "--pr", "--swd", "--mirror"]
    assert where == sorted(where) and where[-1] < r.stdout.index("--num")
    for m in METRICS.values():
        assert m.help in r.stdout


def test_the_tables_numbers_are_the_maths_modules_numbers():
    """The table states them without importing NumPy; the maths modules use them."""
    assert (IS_SPLITS, PR_K, KID_SUBSETS, KID_SUBSET_SIZE) == (isc.SPLITS, prc.K, kid.SUBSETS, kid.SUBSET_SIZE)
    assert METRICS["is"].min_gen == isc.SPLITS and not METRICS["is"].needs_real and METRICS["is"].needs_logits
    assert METRICS["pr"].min_gen == METRICS["pr"].min_real == prc.K + 1
    assert [m for m in METRICS.values() if m.needs_real_features] == [METRICS["kid"], METRICS["pr"]]


def test_the_report_formats_each_metric_as_before():
    record = {"metrics": ["fid", "is", "kid", "pr"], "fid": 12.345678, "is_mean": 2.0, "is_std": 0.125,
              "kid_mean": 0.00123, "kid_std": 0.0001, "precision": 0.5, "recall": 0.25,
              "protocol": {"network": "N", "weights_sha256": "ab" * 32, "images": "I", "resize": "R",
                           "normalisation": "Z", "features": "F", "is": "IS-P", "kid": "KID-P", "pr": "PR-P"},
              "weights": "w.pth", "generated": "G", "device": "cpu", "seconds": 1.5}
    assert report.rows(record) == [("FID", "12.3457"), ("IS", "2.0000 ± 0.1250"), ("KID", "0.001230 ± 0.000100"),
                                   ("precision", "0.5000"), ("recall", "0.2500")]
    assert report.protocol_lines(record)[3:] == ["IS: IS-P", "KID: KID-P", "precision/recall: PR-P", "device: cpu, 1.5s"]
    only_fid = dict(record, metrics=["fid"])
    assert report.rows(only_fid) == [("FID", "12.3457")] and report.protocol_lines(only_fid)[3:] == ["device: cpu, 1.5s"]
