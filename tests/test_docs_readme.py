"""Every command the README shows runs: the workflow block end to end on tiny LSUN-format data."""

from __future__ import annotations

import json
import re
import shlex

from conftest import REPO
from prepare_helpers import make_lsun_lmdb, make_zip

# Heavy values in the README and what the test runs instead.
SHRINK = {"--steps 100000": "--steps 2 --batch 8 --g-conv-dim 16 --d-conv-dim 16", "--steps 200000": "--steps 3",
          "--num 50000": "--num 10 --num-real 10 --batch 5 --device cpu"}


def readme_commands(section: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", body, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip().startswith(("sagan", "make"))]


def test_quick_start_is_exactly_make_demo_and_make_test():
    assert readme_commands("Quick start") == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert "\ndemo:" in makefile and "\ntest:" in makefile


def test_real_workflow_commands_run(cli, tmp_path, tmp_path_factory, monkeypatch):
    from metrics_helpers import weights_file

    for var in ("SAGAN_INCEPTION_URL", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the statistics cache stays in tmp_path
    monkeypatch.setenv("SAGAN_INCEPTION_WEIGHTS", str(weights_file(tmp_path_factory)))  # random weights
    lmdb_dir, _ = make_lsun_lmdb(tmp_path / "src", n=66, corrupt=())
    make_zip(lmdb_dir, tmp_path / "church_outdoor_train_lmdb.zip")
    commands = readme_commands("The real workflow")
    assert commands[0].startswith("sagan prepare lsun church_outdoor --zip")
    for command in commands:
        for heavy, light in SHRINK.items():
            command = command.replace(heavy, light)
        r = cli(*shlex.split(command)[1:])
        assert r.code == 0, f"{command}\n{r.stdout}\n{r.stderr}"
    assert (tmp_path / "grid.png").exists() and (tmp_path / "attn-map.png").exists()
    assert '"kind": "eval"' in (tmp_path / "runs" / "00000-lsun-church_outdoor-64" / "metrics.jsonl").read_text()


def test_demo_script_runs_the_whole_workflow_small(tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, SAGAN_DEMO_STEPS="4", SAGAN_DEMO_COUNT="128", SAGAN_DEMO_DIR=str(tmp_path / "demo"),
               PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py")], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("samples.png", "interpolation.png", "attn-map.png", "attn-maps.npz", "data/synthetic-32/preview.png"):
        assert (tmp_path / "demo" / name).exists(), name
    assert "demo finished" in r.stdout and "attention map" in r.stdout
    assert "expected: about" in r.stdout and "more for the remaining 3 steps" in r.stdout  # train's estimate
    # the final generator's scores, computed by `sagan evaluate --swd --mirror`, beside the data's and the targets
    quality = r.stdout.split("quality of the final (EMA) generator, 128 images", 1)[1]
    assert "(the data's: 0.0000; target ≤ 0.04: " in quality and "× the floor; target ≤ 1.6×: " in quality
    [scores] = [json.loads(x) for x in (tmp_path / "demo" / "runs" / "00000-demo" / "metrics.jsonl").read_text()
                .splitlines() if '"kind": "eval"' in x]
    assert f"mirror error {scores['mirror_error']:.4f}" in quality and f"SWD ×1e3     {scores['swd']:.2f}" in quality


def test_ctrl_c_during_the_demo_lets_train_save_its_checkpoint_and_ends_in_one_line(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ, SAGAN_DEMO_STEPS="100000", SAGAN_DEMO_COUNT="128", SAGAN_DEMO_DIR=str(tmp_path / "demo"),
               PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "demo.py")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run = tmp_path / "demo" / "runs" / "00000-demo"
    t0 = time.monotonic()
    while not (run / "config.json").exists():  # training has started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 180, "training did not start"
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and err.strip().count("\n") == 0, err
    assert err.startswith("demo interrupted during `sagan train`"), err
    assert "interrupted at step" in out  # train's own Ctrl-C: checkpoint, exit 0
    assert (run / "checkpoints" / "latest.pt").exists()
