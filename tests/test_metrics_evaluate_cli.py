"""`sagan evaluate` end to end: a tiny trained checkpoint, a tiny dataset, random-weight Inception files."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error
from metrics_helpers import home, tiny_run, weights_file  # noqa: F401
from payloads import CodeRunner
from prepare_helpers import FileServer
from sagan_cli.metrics import sources
from sagan_cli.metrics import weights as W

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run for the whole module: (run directory, its dataset). The dataset path is absolute."""
    return tiny_run(tmp_path_factory.mktemp("evaluate-train"))


@pytest.fixture
def run(trained, tmp_path, home):
    """A private copy of the trained run under tmp_path/runs (the newest run for CKPT-less calls)."""
    run_dir = tmp_path / "runs" / trained[0].name
    shutil.copytree(trained[0], run_dir)
    return run_dir


@pytest.fixture
def no_sampling(monkeypatch):
    """Fail the test if any image is generated."""
    calls = []

    def forbidden(self, batch):
        calls.append(batch)
        raise AssertionError("images were generated before the inputs were checked")

    monkeypatch.setattr(sources.GeneratorSource, "batches", forbidden)
    return calls


def eval_lines(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [rec for rec in map(json.loads, lines) if rec.get("kind") == "eval"]


def test_first_run_downloads_weights_computes_all_metrics_and_logs(cli, run, home, tmp_path_factory, monkeypatch):
    """No weights anywhere: --download-weights fetches them (loopback server, sha256 checked); all four
    metrics; --json prints nothing but JSON on stdout; CKPT omitted → newest run under ./runs."""
    blob = weights_file(tmp_path_factory, "torch-fidelity").read_bytes()
    monkeypatch.setattr(W, "SHA256_PREFIX", hashlib.sha256(blob).hexdigest()[:8])
    with FileServer(blob, W.PYTORCH_FID_NAME) as server:
        monkeypatch.setenv(W.ENV_URL, f"{server.base}/{W.PYTORCH_FID_NAME}")
        r = cli("evaluate", "--fid", "--is", "--kid", "--pr", "--num", 10, "--num-real", 4, "--batch", 5,
                "--device", "cpu", "--json", "--download-weights")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["kind"] == "eval" and res["step"] == 2 and res["checkpoint"].endswith("latest.pt")
    assert res["num_gen"] == 10 and res["num_real"] == 4 and res["real_stats_cached"] is False
    for key in ("fid", "is_mean", "is_std", "kid_mean", "kid_std", "precision", "recall"):
        assert np.isfinite(res[key]), key
    assert res["fid"] > 0 and res["is_mean"] >= 1.0 and 0 <= res["precision"] <= 1 and 0 <= res["recall"] <= 1
    assert res["protocol"]["resize"].startswith("TF1 bilinear")
    assert res["protocol"]["weights_sha256"] == hashlib.sha256(blob).hexdigest()
    assert "real statistics: computed" in r.stderr
    assert (W.hub_checkpoint_dir() / W.PYTORCH_FID_NAME).read_bytes() == blob
    [logged] = eval_lines(run)
    assert logged["fid"] == res["fid"] and logged["step"] == 2 and logged["kid_mean"] == res["kid_mean"]
    [cached] = (home / ".cache" / "sagan" / "stats").iterdir()
    assert stats_cache_has_features(cached)


def stats_cache_has_features(path) -> bool:
    with np.load(path, allow_pickle=False) as z:
        return "features" in z.files and z["features"].shape == (4, 2048)


def test_cached_statistics_are_reused_and_a_sample_folder_scores_the_same(cli, run, trained, home, tmp_path,
                                                                          tmp_path_factory, monkeypatch):
    data, weights = trained[1], weights_file(tmp_path_factory, "torch-fidelity")
    ckpt = run / "checkpoints" / "latest.pt"
    r = cli("evaluate", ckpt, "--num", 2, "--num-real", 4, "--device", "cpu", "--inception-weights", weights)
    assert r.code == 0, r.stderr
    assert "real statistics: computed" in r.stdout
    [stats] = (home / ".cache" / "sagan" / "stats").iterdir()
    mtime = stats.stat().st_mtime_ns

    # the real statistics come from the cache (same file, untouched); the table states the protocol
    r = cli("evaluate", ckpt, "--num", 2, "--num-real", 4, "--device", "cpu", "--inception-weights", weights)
    assert r.code == 0, r.stderr
    assert "cache hit" in r.stdout and "computed" not in r.stdout
    assert stats.stat().st_mtime_ns == mtime and len(list(stats.parent.iterdir())) == 1
    for text in ("FID", "TF1 bilinear to 299", "(x-128)/128", "pool3", "step 2", "2 images of 32px",
                 "4 of 64 images", "cached statistics reused", "seeds 0-1"):
        assert text in r.stdout, text
    first, second = eval_lines(run)
    assert first["fid"] == second["fid"] and second["real_stats_cached"] is True

    # the same images written by `sagan sample` and evaluated as a folder give the same FID
    # (weights from $SAGAN_INCEPTION_WEIGHTS this time)
    assert cli("sample", ckpt, "--seeds", "0-1", "--outdir", "fakes").code == 0
    monkeypatch.setenv("SAGAN_INCEPTION_WEIGHTS", str(weights))
    r = cli("evaluate", "--samples", tmp_path / "fakes", "--data", data, "--num-real", 4, "--device", "cpu", "--json")
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["fid"] == pytest.approx(first["fid"], rel=1e-6) and "checkpoint" not in res
    assert res["real_stats_cached"] is True
    assert len(eval_lines(run)) == 2  # a folder of images has no run to log into


def test_missing_weights_is_one_line_before_any_sampling(cli, run, no_sampling):
    r = cli("evaluate", "--device", "cpu")
    assert_one_line_error(r, "Inception weights were not found", W.PYTORCH_FID_URL, W.TORCH_FIDELITY_URL,
                          "--download-weights", "--inception-weights", str(W.sagan_cache_dir()),
                          str(W.hub_checkpoint_dir() / W.TORCH_FIDELITY_NAME))
    assert no_sampling == []


def test_bad_hash_download_is_refused_before_sampling_and_leaves_no_file(cli, run, monkeypatch, no_sampling):
    with FileServer(b"not the inception weights" * 1000, W.PYTORCH_FID_NAME) as server:
        monkeypatch.setenv(W.ENV_URL, f"{server.base}/{W.PYTORCH_FID_NAME}")
        r = cli("evaluate", "--download-weights", "--device", "cpu")
        assert_one_line_error(r, "sha256", "not 6726825d")
        # a typo elsewhere is reported before anything is downloaded
        r = cli("evaluate", "runs/nope.pt", "--download-weights")
        assert_one_line_error(r, "checkpoint not found")
    assert server.ranges == [None]
    hub = W.hub_checkpoint_dir()
    assert not hub.exists() or list(hub.iterdir()) == []
    assert no_sampling == []


@pytest.mark.parametrize("args,fragments", [
    (["runs/00000-tiny-32", "--samples", "x"], ["CKPT and --samples conflict"]),
    (["--real-stats", "s.npz", "--data", "d"], ["--real-stats and --data conflict"]),
    (["--real-stats", "s.npz", "--num-real", "5"], ["--num-real has no effect"]),
    (["--download-weights", "--inception-weights", "{w}"], ["conflict"]),
    (["--num", "1"], ["--num"]),
    (["--device", "tpu"], ["--device"]),
    (["--samples", "nowhere"], ["--samples nowhere: no such directory"]),
    (["--samples", "empty"], ["no images"]),
    (["--samples", "{data}"], ["no real data", "--data"]),
    (["--samples", "{data}", "--no-ema"], ["--ema/--no-ema applies to a checkpoint"]),
    (["--samples", "{data}", "--seed", "3"], ["--seed applies to a checkpoint"]),
    (["--data", "nowhere"], ["dataset directory not found"]),
    (["--num-real", "65"], ["--num-real 65", "only 64"]),
    (["--is", "--num", "5"], ["IS (10 splits) needs at least 10 generated images"]),
    (["--pr", "--num", "3"], ["precision/recall", "at least 4"]),
    (["runs/missing.pt"], ["checkpoint not found"]),
    (["--runs", "elsewhere"], ["no checkpoint found under elsewhere"]),
    (["--real-stats", "missing.npz"], ["--real-stats missing.npz: no such file"]),
    (["--inception-weights", "missing.pth"], ["--inception-weights missing.pth: no such file"]),
])
def test_bad_inputs_are_one_line_errors_before_sampling(cli, run, trained, tmp_path, no_sampling, args, fragments):
    (tmp_path / "empty").mkdir()
    dummy = tmp_path / "dummy.pth"  # found, but never loaded: every error here comes earlier
    dummy.write_bytes(b"x")
    args = [a.format(w=dummy, data=trained[1]) for a in args]
    if "--inception-weights" not in args:
        args += ["--inception-weights", str(dummy)]
    assert_one_line_error(cli("evaluate", *args), *fragments)
    assert no_sampling == []


def test_env_weights_that_do_not_exist_name_the_variable(cli, run, monkeypatch):
    monkeypatch.setenv("SAGAN_INCEPTION_WEIGHTS", "/nowhere/w.pth")
    assert_one_line_error(cli("evaluate"), "$SAGAN_INCEPTION_WEIGHTS /nowhere/w.pth: no such file")


def test_real_stats_files_pickles_and_mismatches_are_refused(cli, run, tmp_path, tmp_path_factory, no_sampling):
    w = weights_file(tmp_path_factory)
    marker = tmp_path / "pwned"
    np.savez(tmp_path / "evil.npz", mu=np.zeros(2048), sigma=np.array([CodeRunner(marker)], dtype=object))
    r = cli("evaluate", "--real-stats", tmp_path / "evil.npz", "--inception-weights", w)
    assert_one_line_error(r, "refused", "pickled")
    import pickle

    (tmp_path / "pickle.npz").write_bytes(pickle.dumps(CodeRunner(marker)))
    assert_one_line_error(cli("evaluate", "--real-stats", tmp_path / "pickle.npz", "--inception-weights", w), "pickled")
    assert not marker.exists()

    np.savez(tmp_path / "small.npz", mu=np.zeros(64), sigma=np.eye(64))
    assert_one_line_error(cli("evaluate", "--real-stats", tmp_path / "small.npz", "--inception-weights", w), "(2048,)")

    from sagan_cli.metrics.stats_cache import PROTOCOL, RealStats, save_stats

    other = {"protocol": PROTOCOL, "weights_sha256": "0" * 64, "num_real": 10}
    save_stats(tmp_path / "other.npz", RealStats(np.zeros(2048), np.eye(2048), other))
    assert_one_line_error(cli("evaluate", "--real-stats", tmp_path / "other.npz", "--inception-weights", w),
                          "other Inception weights")
    mine = dict(other, weights_sha256=W.sha256_of(w))
    save_stats(tmp_path / "mine.npz", RealStats(np.zeros(2048), np.eye(2048), mine))
    assert_one_line_error(cli("evaluate", "--kid", "--real-stats", tmp_path / "mine.npz", "--inception-weights", w),
                          "no real features")
    assert no_sampling == []


def test_pytorch_fid_stats_are_accepted_with_a_warning(cli, run, tmp_path, tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.random((3000, 2048)) * 0.5
    np.savez(tmp_path / "pytorch_fid.npz", mu=x.mean(0), sigma=np.cov(x, rowvar=False))  # its two keys only
    r = cli("evaluate", "--real-stats", tmp_path / "pytorch_fid.npz", "--num", 2, "--device", "cpu",
            "--inception-weights", weights_file(tmp_path_factory))
    assert r.code == 0, r.stderr
    assert "warning:" in r.stderr and "pytorch-fid" in r.stderr and "F.interpolate" in r.stderr
    assert "FID" in r.stdout and f"statistics file {tmp_path / 'pytorch_fid.npz'}" in r.stdout
    assert np.isfinite(eval_lines(run)[-1]["fid"])
