"""Shared fixtures: the CLI run in-process or as a real subprocess, tiny datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Under pytest-xdist (`make test` runs one worker per core): one thread per worker for torch and for numpy's
# and scipy's OpenBLAS (FID's 2048-d eigh), set before any of them is imported (OpenBLAS reads the variables
# when it loads, so this comes before `import numpy`), so that this process and every subprocess it starts
# (which inherit them) share the cores instead of oversubscribing them; on a loaded 2-core machine a 2-thread
# step took 3.4x a 1-thread one. `--nproc` jobs keep the value too (launch_local fills it in only when unset).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_name] = "1"

import numpy as np  # noqa: E402 (after the thread settings above)
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"

# The model every training test uses: 32 px, narrow, on the CPU (a step takes milliseconds).
TINY = ["--imsize", "32", "--g-conv-dim", "16", "--d-conv-dim", "16", "--z-dim", "32", "--device", "cpu"]

# The suite must not depend on the caller's terminal or network settings (a CI job often sets some):
# rich takes FORCE_COLOR / TTY_COMPATIBLE to mean "a terminal" and draws bars instead of plain lines,
# and urllib sends even 127.0.0.1 through http_proxy unless no_proxy names it. Subprocesses inherit this.
for _name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE"):
    os.environ.pop(_name, None)
os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"


def pytest_configure(config):
    if XDIST_WORKER:
        import torch

        torch.set_num_threads(1)  # in case a plugin imported torch before this file set the variables


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def _run_cli_inprocess(args, capsys) -> Result:
    from sagan_cli.cli import main

    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return Result(code, out, err)


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `sagan ARGS...` in this process, with cwd = tmp_path. Returns Result(code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return lambda *args: _run_cli_inprocess(args, capsys)


def run_sagan(*args, cwd=None, timeout=600, env=None) -> subprocess.CompletedProcess:
    """Run `python -m sagan_cli ARGS...` as a real subprocess (signals, exit codes, fresh imports)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.setdefault("COLUMNS", "200")
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "sagan_cli", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def assert_one_line_error(result, *fragments):
    """A user error: non-zero exit, a single `error:` line on stderr, no traceback."""
    code = result.code if hasattr(result, "code") else result.returncode
    err = result.stderr.strip()
    assert code != 0, f"expected failure, got exit 0; stderr={err!r}"
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, f"expected one line, got:\n{err}"
    assert err.startswith("error:"), err
    for frag in fragments:
        assert frag.lower() in err.lower(), f"{frag!r} not in {err!r}"


def make_images(n: int, imsize: int, seed: int = 0) -> np.ndarray:
    """Structured uint8 images (smooth gradients + a square), N×3×S×S."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:imsize, 0:imsize] / max(imsize - 1, 1)
    out = np.empty((n, 3, imsize, imsize), np.uint8)
    for i in range(n):
        c = rng.uniform(0, 1, size=(3, 1, 1))
        img = c * xx[None] + (1 - c) * yy[None]
        s = imsize // 4
        r0, c0 = rng.integers(0, imsize - s, size=2)
        img[:, r0 : r0 + s, c0 : c0 + s] = rng.uniform(0, 1, size=(3, 1, 1))
        out[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return out


@pytest.fixture
def tiny_dataset(tmp_path):
    """A complete 32px prepared dataset of 64 images under tmp_path/data/tiny-32."""
    from sagan_cli.data.dataset import save_dataset

    path = tmp_path / "data" / "tiny-32"
    save_dataset(path, make_images(64, 32), source="test", category=None, split=None)
    return path


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip, with the reason, where torch sees no CUDA device (benchmarks/gpu_check.sh runs them)."""
    cuda = [item for item in items if "cuda" in item.keywords]
    if not cuda:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skipif(True, reason="needs a CUDA device (benchmarks/gpu_check.sh runs these on one)")
        for item in cuda:
            item.add_marker(skip)
