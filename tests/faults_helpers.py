"""Shared by the fault-injection tests (tests/test_faults_*.py) and the bad-input matrix (tests/test_cli_bad_input.py):
a tiny trained run built once per session, subprocess control (kill, freeze mid-write), checkpoint checks."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from conftest import REPO, TINY, make_images  # noqa: F401 (TINY: for the fault tests)

# One thread per torch subprocess: on 2 cores shared with other jobs, two threads per process are 3-4x slower,
# and the same thread count in every run keeps killed+resumed and uninterrupted runs comparable bit for bit.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
TEMP_RE = re.compile(r"^\..*\.tmp$")  # what atomic_open / atomic_link_or_copy leave when killed mid-write
RUN = "runs/00000-tiny-32"
DATA = "data/tiny-32"

_BASE: dict[str, Path] = {}


def poisoned_trainer(tmp_path: Path, data: Path, poison, at_step: int = 2, **train_opts):
    """A tiny Trainer (10 steps, a log and a checkpoint every step) that calls ``poison(trainer)`` under no_grad
    right after step ``at_step + 1``'s update, and a logger writing to a string; for the divergence guards."""
    from rich.console import Console

    from sagan_cli.train.log import TrainLogger
    from sagan_cli.train.session import prepare_run

    trainer = prepare_run(
        model_opts=dict(imsize=32, z_dim=32, g_conv_dim=16, d_conv_dim=16, g_attn=None, d_attn=None, attention="paper"),
        train_opts=dict(steps=10, batch=8, log_every=1, ckpt_every=1, sample_every=100, name="", **train_opts),
        explicit=set(), resume=None, outdir=tmp_path / "runs", data=data, device_spec="cpu", say=lambda s: None,
    )
    original = trainer.train_step

    def poisoned(*args, **kwargs):  # the real batch (and its labels, for a conditional model)
        original(*args, **kwargs)
        if trainer.step == at_step:
            with torch.no_grad():
                poison(trainer)

    trainer.train_step = poisoned
    return trainer, TrainLogger(trainer.run_dir, 10, 0, False, console=Console(file=io.StringIO()))


def make_dataset(root: Path) -> Path:
    """The same 64-image 32px dataset as conftest's ``tiny_dataset`` (same bytes, same fingerprint)."""
    from sagan_cli.data.dataset import save_dataset

    path = Path(root) / DATA
    save_dataset(path, make_images(64, 32), source="test", category=None, split=None)
    return path


def base_workspace(tmp_path_factory) -> Path:
    """A directory holding ``data/tiny-32`` and ``runs/00000-tiny-32`` trained 2 steps (checkpoints at 1 and 2),
    made once per session; its checkpoints record the dataset by the relative path ``data/tiny-32``."""
    if "path" not in _BASE:
        from sagan_cli.cli import main

        root = tmp_path_factory.mktemp("trained-base")
        make_dataset(root)
        old = Path.cwd()
        os.chdir(root)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
                try:
                    main(["train", *TINY, "--data", DATA, "--steps", "2", "--batch", "8", "--ckpt-every", "1",
                          "--log-every", "1", "--ema-start", "1"])
                except SystemExit as exc:
                    assert not exc.code, err.getvalue()
        finally:
            os.chdir(old)
        _BASE["path"] = root
    return _BASE["path"]


def populate(tmp_path: Path, tmp_path_factory, run: bool = True) -> None:
    """Copy the session's dataset (and trained run) into ``tmp_path``: each test may damage its own copy."""
    base = base_workspace(tmp_path_factory)
    shutil.copytree(base / "data", tmp_path / "data", dirs_exist_ok=True)
    if run:
        shutil.copytree(base / "runs", tmp_path / "runs", dirs_exist_ok=True)


# ------------------------------------------------------------------ subprocesses
def sagan_env(extra: dict | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **ONE_THREAD)
    env.update(extra or {})
    return env


def popen_sagan(*args, cwd: Path, **kwargs) -> subprocess.Popen:
    """`python -m sagan_cli ARGS...` started in the background (output to files, so it never blocks on a pipe)."""
    out = open(Path(cwd) / ".stdout.txt", "w")
    err = open(Path(cwd) / ".stderr.txt", "w")
    proc = subprocess.Popen([sys.executable, "-m", "sagan_cli", *map(str, args)], cwd=cwd, env=sagan_env(),
                            stdout=out, stderr=err, **kwargs)
    out.close()
    err.close()
    return proc


def outputs(cwd: Path) -> tuple[str, str]:
    return (Path(cwd) / ".stdout.txt").read_text(), (Path(cwd) / ".stderr.txt").read_text()


def wait_until(predicate, proc: subprocess.Popen, timeout: float = 180, what: str = "condition") -> None:
    t0 = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before {what}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in Path(directory).iterdir() if TEMP_RE.match(p.name)) if Path(directory).is_dir() else []


def _wait_stopped(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Return once ``proc`` is in the stopped state (its /proc stat says T), or has exited."""
    stat = Path(f"/proc/{proc.pid}/stat")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return  # gone, or no /proc: nothing more to wait for
        if state in ("T", "t", "Z", "X"):
            return
        time.sleep(0.0002)
    raise AssertionError(f"process {proc.pid} did not stop within {timeout} s of SIGSTOP")


def freeze_mid_write(proc: subprocess.Popen, directory: Path, skip: int = 0, timeout: float = 180) -> str:
    """Stop ``proc`` (SIGSTOP) while a temporary file is being written in ``directory`` — after letting
    ``skip`` writes go by — and return that file's name. The caller kills or continues it."""
    t0, seen = time.monotonic(), set()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before it was caught mid-write")
        tmps = temp_files(directory)
        if tmps:
            fresh = [t for t in tmps if t not in seen]
            if fresh and len(seen) >= skip:
                proc.send_signal(signal.SIGSTOP)
                _wait_stopped(proc)  # SIGSTOP is asynchronous: a rename could still slip in before it lands
                still = [t for t in temp_files(directory) if t in fresh]
                if still:
                    return still[0]
                proc.send_signal(signal.SIGCONT)  # renamed between our look and the stop: try the next one
            seen.update(fresh)
        time.sleep(0.0005)
    proc.kill()
    raise AssertionError("never caught a write in progress")


def sigkill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.send_signal(signal.SIGCONT)  # a stopped process dies at once either way; harmless otherwise
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.returncode


# ------------------------------------------------------------------ checkpoints and metrics
def load(path: Path) -> dict:
    from sagan_cli.train.checkpoint import load_checkpoint

    return load_checkpoint(path)


def checkpoint_steps(ckdir: Path) -> dict[str, int]:
    """Every visible file in checkpoints/ loads with load_checkpoint; name → step. A step file holds its own step."""
    steps = {}
    for p in sorted(Path(ckdir).iterdir()):
        if p.name.startswith("."):
            continue
        assert p.suffix == ".pt", f"unexpected file {p.name} in checkpoints/"
        ck = load(p)
        steps[p.name] = int(ck["step"])
        m = re.fullmatch(r"step-(\d+)\.pt", p.name)
        assert m or p.name == "latest.pt", p.name
        if m:
            assert int(m.group(1)) == ck["step"], f"{p.name} holds step {ck['step']}"
    return steps


def metric_records(run: Path) -> list[dict]:
    """metrics.jsonl parsed line by line: a torn line fails here."""
    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def flat_weights(ckpt: dict) -> dict[str, torch.Tensor]:
    """Every tensor of G, D, G_ema and both optimisers, by a dotted name."""
    out = {}

    def walk(prefix, value):
        if isinstance(value, torch.Tensor):
            out[prefix] = value
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)

    for key in ("G", "D", "G_ema", "opt_G", "opt_D"):
        walk(key, ckpt[key])
    return out


def assert_same_weights(a: dict, b: dict) -> None:
    wa, wb = flat_weights(a), flat_weights(b)
    assert wa.keys() == wb.keys() and len(wa) > 50
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs"


def all_finite(ckpt: dict) -> bool:
    return all(torch.isfinite(t).all() for t in flat_weights(ckpt).values() if t.is_floating_point())
