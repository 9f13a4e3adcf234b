"""The benchmark scripts keep running and the performance page keeps quoting what they saved.

* ``benchmarks/train_bench.py --quick --json`` runs, writes every key the docs quote, and re-renders saved runs;
* docs/performance.md quotes the figures of docs/perf/*.json;
* ``benchmarks/loader_bench.py --cold`` reads from the disk (or says it could not).

No timing is asserted here: speed lives in benchmarks/ (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, TINY


@pytest.mark.slow  # a real bench run of both arms (~20 s); the saved-results checks below stay in the default run
def test_train_bench_quick_writes_the_documented_keys(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "train_bench.py"), "--quick", "--threads", "1", "--device", "cpu",
         "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sagan / naive" in proc.stdout
    res = json.loads(out.read_text())
    for key in ("environment", "imsize", "batch", "arms", "ratio", "ratio_paired_median", "ratio_cpu_time",
                "matmul_peak", "params", "forward_flops_per_image", "loader", "sagan_settings"):
        assert key in res, key
    for key in ("device_name", "torch", "threads", "loadavg_start", "loadavg_end"):
        assert key in res["environment"], key
    assert set(res["arms"]) == {"naive", "sagan"}
    for arm in res["arms"].values():
        for key in ("img_per_s_median", "img_per_s_iqr", "step_s", "cpu_s_median", "flops_per_step", "flop_per_s",
                    "fraction_of_fp32_peak", "memory"):
            assert key in arm, key
        assert arm["img_per_s_median"] > 0 and arm["flops_per_step"] > 0
        assert arm["memory"] is not None and {"method", "before_mib", "peak_mib", "step_mib"} <= set(arm["memory"])
        assert arm["memory"]["peak_mib"] > 0
    # Same networks in both arms: same parameter count and forward FLOPs; sagan's step does less work.
    assert res["params"]["naive"] == res["params"]["sagan"]
    assert res["forward_flops_per_image"]["naive"] == res["forward_flops_per_image"]["sagan"]
    assert res["arms"]["sagan"]["flops_per_step"] < res["arms"]["naive"]["flops_per_step"]
    assert res["loader"]["img_per_s"] > 0 and "headroom" in res["loader"]


def test_performance_page_quotes_the_saved_benchmark_results():
    """docs/performance.md's figures are the ones train_bench.py saved in docs/perf/, not typed in by hand;
    a device without a saved run says 'not yet measured'."""
    doc = (REPO / "docs" / "performance.md").read_text()
    saved = sorted((REPO / "docs" / "perf").glob("train-*.json"))
    assert saved, "no saved train_bench results in docs/perf/"
    devices = set()
    for path in saved:
        res = json.loads(path.read_text())
        devices.add(res["environment"]["device"].split(":")[0])
        assert f"perf/{path.name}" in doc, f"{path.name} is not cited"
        assert res["environment"]["git"] in doc and "dirty" not in res["environment"]["git"]
        for name, arm in res["arms"].items():
            assert f"{arm['img_per_s_median']:.1f}" in doc, (path.name, name)
        assert f"{res['ratio']:.2f}×" in doc
    if "cuda" not in devices:
        assert "not yet measured" in doc.split("## CUDA", 1)[1]


def test_performance_page_quotes_the_layout_before_and_after_runs():
    doc = (REPO / "docs" / "performance.md").read_text()
    saved = json.loads((REPO / "docs" / "perf" / "layout-move-cpu.json").read_text())
    assert "perf/layout-move-cpu.json" in doc
    for key in ("before", "after", "after_earlier_run"):
        res = saved[key]
        row = " | ".join(f"{res['arms'][arm]['img_per_s_median']:.2f}" for arm in ("naive", "sagan"))
        assert f"{row} | {res['ratio']:.2f}× |" in doc, key


def test_train_bench_re_renders_saved_results_as_markdown():
    saved = sorted((REPO / "docs" / "perf").glob("train-*.json"))[0]
    res = json.loads(saved.read_text())
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "train_bench.py"), "--from-json", str(saved),
                           "--markdown"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sagan = res["arms"]["sagan"]
    assert f"| sagan | {sagan['img_per_s_median']:.1f} | " in proc.stdout
    assert f"sagan / naive: **{res['ratio']:.2f}×**" in proc.stdout


def _filesystem_type(path: str) -> str | None:
    """The type of the filesystem holding ``path`` (from /proc/self/mountinfo), or None."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    path, best, kind = os.path.realpath(path), "", None
    for line in lines:
        fields = line.split()
        mount, fstype = fields[4], fields[fields.index("-") + 1]
        if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, kind = mount, fstype
    return kind


def _loader_bench(tmp_path, *args, env=None):
    out = tmp_path / "loader.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "loader_bench.py"), "--images", "256",
                           "--batches", "4", "--imsize", "32", "--json", str(out), *args],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="needs posix_fadvise to evict pages")
def test_loader_bench_cold_reads_from_the_disk(tmp_path):
    import tempfile

    if _filesystem_type(tempfile.gettempdir()) in ("tmpfs", "ramfs"):
        pytest.skip(f"{tempfile.gettempdir()} is memory-backed: its pages cannot be evicted")
    res = _loader_bench(tmp_path, "--cold")
    assert res["cold"] is True and res["cache"].startswith("cold") and res["img_per_s"] > 0
    # every drain really started from the disk (the loader of the previous one no longer maps the file)
    assert all(r is not None and r < 0.05 for r in res["resident_after_evict"]), res["resident_after_evict"]


def test_loader_bench_does_not_call_a_memory_backed_read_cold(tmp_path):
    """On tmpfs (here /dev/shm) DONTNEED drops nothing: the result must say warm, not claim a disk read."""
    if _filesystem_type("/dev/shm") != "tmpfs" or not os.access("/dev/shm", os.W_OK):
        pytest.skip("no writable tmpfs at /dev/shm")
    res = _loader_bench(tmp_path, "--cold", env=dict(os.environ, TMPDIR="/dev/shm"))
    assert res["cold"] is False and "kept the file's pages cached" in res["cache"], res


def test_standing_bench_reports_the_three_modes_and_the_data(cli, tiny_dataset, tmp_path):
    assert cli("train", *TINY, "--data", tiny_dataset, "--steps", "3", "--batch", "8", "--ema-start", "1").code == 0
    ckpt = tmp_path / "runs/00000-tiny-32/checkpoints/latest.pt"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/standing_bench.py"), str(ckpt), "--data", str(tiny_dataset),
                        "--num", "16", "--json", "-"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["modes"]) == {"eval", "standing", "batch"} and out["standing"]["batch"] == 8
    assert out["modes"]["eval"]["mean_abs_diff_vs_standing"] > 0 and "mirror_error" in out["data"]


def _bench(name: str):
    """benchmarks/NAME.py as a module (its markdown() renders saved results as the docs show them)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fidelity_page_shows_the_saved_ablation_tables_and_curves():
    """docs/fidelity.md's tables are fidelity_bench.py's rendering of the JSON saved in docs/perf/, and its
    figure is there."""
    bench = _bench("fidelity_bench")
    doc = (REPO / "docs" / "fidelity.md").read_text()
    saved = sorted((REPO / "docs" / "perf").glob("fidelity-*.json"))
    assert saved, "no saved fidelity_bench results in docs/perf/"
    for path in saved:
        res = json.loads(path.read_text())
        assert f"perf/{path.name}" in doc, f"{path.name} is not cited"
        assert bench.markdown(res) in doc, f"the page's tables are not {path.name}'s"
        assert set(res["arms"]) == set(bench.ARMS) and len(res["settings"]["seeds"]) >= 2
    assert "images/fidelity-curves.png" in doc and (REPO / "docs" / "images" / "fidelity-curves.png").exists()


def test_the_fidelity_page_shows_the_saved_metric_calibration():
    res = json.loads((REPO / "docs" / "perf" / "metric-calibration-cpu.json").read_text())
    doc = (REPO / "docs" / "fidelity.md").read_text()
    assert "perf/metric-calibration-cpu.json" in doc and _bench("metric_calibration").markdown(res) in doc


def test_the_fidelity_page_shows_the_saved_demo_search():
    res = json.loads((REPO / "docs" / "perf" / "demo-search-cpu.json").read_text())
    doc = (REPO / "docs" / "fidelity.md").read_text()
    assert "perf/demo-search-cpu.json" in doc and _bench("demo_search").markdown(res) in doc


def test_demo_search_collects_a_runs_options_and_scores(cli, tmp_path):
    assert cli("prepare", "synthetic", "--imsize", "32", "--count", "40", "--out", "d").code == 0
    assert cli("train", *TINY, "--data", "d", "--steps", "2", "--batch", "8", "--lr-g", "3e-4", "--eval-every", "1",
               "--eval-metrics", "swd,mirror", "--eval-num", "8").code == 0
    run = next((tmp_path / "runs").iterdir())
    search, out = _bench("demo_search"), tmp_path / "s.json"
    assert search.main(["--collect", str(run), "--name", "tiny", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    c = res["candidates"]["tiny"]
    assert c["options"]["lr_g"] == 3e-4 and c["options"]["batch"] == 8 and [e["step"] for e in c["evals"]] == [1, 2]
    assert all(e["swd"] > 0 and 0 < e["mirror_error"] < 1 for e in c["evals"])
    assert "| tiny | 8 | 0.0003 / 0.0004 |" in search.markdown(res)
    # a second candidate joins the file; a run without eval records is refused
    assert cli("train", *TINY, "--data", "d", "--steps", "1", "--batch", "8", "--name", "plain").code == 0
    plain = next(p for p in (tmp_path / "runs").iterdir() if p.name.endswith("plain"))
    with pytest.raises(SystemExit, match="no eval records"):
        search.main(["--collect", str(plain), "--name", "plain", "--json", str(out)])
    assert list(json.loads(out.read_text())["candidates"]) == ["tiny"]


def test_metric_calibration_damages_score_in_the_order_they_hurt():
    """Real images score ~ their floor and mirror error 0; more noise scores worse; swapped halves break only
    the mirror error's symmetry (both halves stay real)."""
    import torch

    from sagan_cli.data.prepare.synthetic import render

    cal = _bench("metric_calibration")
    images = torch.from_numpy(np.stack([render(0, i, 32) for i in range(96)]))
    real, rest = images[:48], images[48:]
    rows = {name: cal.score(d, real) for name, _, d in cal.damaged_sets(rest, seed=0)}
    assert rows["none"]["mirror_error"] == 0 and rows["blur"]["mirror_error"] == 0
    swd = [rows["none"]["swd"]] + [rows[f"noise σ={s}"]["swd"] for s in cal.SIGMAS]
    assert swd == sorted(swd) and swd[-1] > 1.5 * swd[0]
    mirror = [rows[f"noise σ={s}"]["mirror_error"] for s in cal.SIGMAS]
    assert mirror == sorted(mirror) and 0 < mirror[0]
    assert rows["halves"]["mirror_error"] > mirror[-1]


def test_the_fidelity_page_shows_the_saved_per_class_measurement_and_grid():
    res = json.loads((REPO / "docs" / "perf" / "class-synthetic3-cpu.json").read_text())
    doc = (REPO / "docs" / "fidelity.md").read_text()
    assert "perf/class-synthetic3-cpu.json" in doc and _bench("class_bench").markdown(res) in doc
    assert "images/class-synthetic3-grid.png" in doc and (REPO / "docs" / "images" / "class-synthetic3-grid.png").exists()


def test_class_bench_scores_every_class_of_a_conditional_checkpoint(cli, tmp_path):
    assert cli("prepare", "synthetic", "--imsize", "32", "--count", "60", "--classes", "3", "--out", "d").code == 0
    assert cli("train", *TINY, "--data", "d", "--steps", "2", "--batch", "8", "--ema-start", "1").code == 0
    ckpt = next((tmp_path / "runs").glob("*/checkpoints/latest.pt"))
    out = tmp_path / "class.json"
    bench = [sys.executable, str(REPO / "benchmarks" / "class_bench.py"), str(ckpt), "--data", str(tmp_path / "d"),
             "--num", "8", "--epochs", "1"]
    proc = subprocess.run([*bench, "--json", str(out)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert [r["name"] for r in res["classes"]] == ["disc-red", "square-green", "triangle-blue"]
    for r in res["classes"]:
        assert 0 <= r["colour_agreement"] <= 1 and 0 <= r["shape_agreement"] <= 1 and r["num"] == 8
        assert 0 < r["mirror_error"] < 1 and r["mirror_error_real"] == 0
    assert set(res["classifier_accuracy_real"]) == {"colour", "shape"} and res["settings"]["test_images"] == 12
    assert _bench("class_bench").markdown(res) in proc.stdout
    # an unlabelled dataset cannot say what a class should look like
    assert cli("prepare", "synthetic", "--imsize", "32", "--count", "16", "--out", "u").code == 0
    with pytest.raises(SystemExit, match="labelled dataset"):
        _bench("class_bench").main([str(ckpt), "--data", str(tmp_path / "u")])


@pytest.mark.slow  # trains two arms for a few steps and scores them (~1 min)
def test_fidelity_bench_runs_every_arm_and_scores_each_point(tmp_path):
    out = tmp_path / "fidelity.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "fidelity_bench.py"), "--steps", "2", "--every", "1", "--seeds", "0",
         "--count", "64", "--eval-num", "16", "--g-conv-dim", "8", "--d-conv-dim", "8", "--ema-start", "1",
         "--threads", "1", "--workdir", str(tmp_path / "w"), "--json", str(out), "--plot", str(tmp_path / "c.png")],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert list(res["arms"]) == ["sagan", "no-attention", "official", "naive"]
    for arm, runs in res["arms"].items():
        points = runs["0"]["points"]
        assert [p["step"] for p in points] == [1, 2]
        for p in points:
            assert 0 < p["raw"]["mirror_error"] < 1 and p["raw"]["swd"] > 0 and p["raw"]["swd_floor"] > 0
            assert (p["ema"] is None) == (arm == "naive")
    assert (tmp_path / "c.png").stat().st_size > 0
    assert _bench("fidelity_bench").markdown(res) in proc.stdout


def _gpu_check(tmp_path, **knobs):
    env = dict(os.environ, PYTHON=sys.executable, **knobs)
    return subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_gpu_check_on_a_machine_without_cuda_says_so_in_one_line_and_runs_nothing(tmp_path):
    proc = _gpu_check(tmp_path)
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.strip() == ("gpu_check: no cuda device here (torch.cuda.is_available() is False); "
                                   "nothing was run")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the whole script as a dry run on the CPU, tiny: tests, bench, two 60-s trainings, scores (~5 min)
def test_gpu_check_dry_run_on_the_cpu_writes_its_summary(tmp_path):
    proc = _gpu_check(tmp_path, GPU_CHECK_DEVICE="cpu", GPU_CHECK_SECONDS="60", GPU_CHECK_IMSIZE="32",
                      GPU_CHECK_BENCH_TIMEOUT="600",
                      GPU_CHECK_COUNT="200", GPU_CHECK_EVAL_NUM="32", GPU_CHECK_CKPT_EVERY="2",
                      GPU_CHECK_BENCH="--quick --threads 1", OMP_NUM_THREADS="1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    res = json.loads((out / "summary.json").read_text())
    assert res["passed"] and [s["step"] for s in res["steps"]][:3] == ["cuda-tests", "train-bench", "prepare"]
    for name in ("defaults", "fp32-eager"):
        t = res["trainings"][name]
        assert t["steps"] > 0 and t["score_latest"]["swd"] > 0 and 0 < t["score_latest"]["mirror_error"] < 1
        assert t["score_common_step"] is not None and (out / f"samples-{name}.png").exists()
    assert res["trainings"]["fp32-eager"]["amp"] is False and res["trainings"]["fp32-eager"]["compile"] is False
    assert json.loads((out / "train-bench.json").read_text())["arms"]
    assert (out / "cuda-tests.xml").exists() and (out / "gpu-check.log").exists()
