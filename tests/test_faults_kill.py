"""SIGKILL at random moments — mid-step, mid-checkpoint-write, before the first checkpoint — then resume.

Every trial checks: each file in checkpoints/ loads; a temporary file is all a killed write leaves
(never a torn `.pt`); `--resume latest` continues from the newest complete checkpoint and removes the
leftovers; metrics.jsonl still holds every step up to that checkpoint, unchanged. Trial 0 also checks
that killed + resumed weights equal an uninterrupted run's, bit for bit. The seeded trials marked
`slow` run with `pytest -m slow`; two run by default.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess

import numpy as np
import pytest

from conftest import assert_one_line_error, run_sagan
from sagan_cli.data.dataset import open_dataset
from sagan_cli.data.prepare.synthetic import render
from sagan_cli.util.fsutil import atomic_link_or_copy
from faults_helpers import (
    DATA, ONE_THREAD, RUN, TINY, assert_same_weights, checkpoint_steps, freeze_mid_write, load, make_dataset,
    metric_records, outputs, popen_sagan, populate, sigkill, temp_files, wait_until,
)

MODES = ("running", "mid-write", "anytime")
DEFAULT_TRIALS = [(0, "running", True), (1, "mid-write", False)]
SLOW_TRIALS = [(seed, MODES[seed % 3], seed in (4, 7)) for seed in range(2, 12)]  # 10 more: 12 in all


def _kill_train(tmp_path, rng: random.Random, mode: str) -> dict:
    ckpt_every = rng.choice([1, 2, 3])
    proc = popen_sagan("train", *TINY, "--data", DATA, "--steps", 100000, "--batch", 8, "--log-every", 1,
                       "--ckpt-every", ckpt_every, "--keep-ckpts", 3, "--sample-every", 5, cwd=tmp_path)
    ckdir = tmp_path / RUN / "checkpoints"
    caught = None
    try:
        if mode == "anytime":  # from start-up (imports, model build) to well into training
            _sleep(proc, rng.uniform(0.3, 8.0))
        else:
            wait_until(lambda: (ckdir / "latest.pt").exists(), proc, what="the first checkpoint")
            if mode == "running":
                _sleep(proc, rng.uniform(0.0, 2.0))
            else:
                caught = freeze_mid_write(proc, ckdir, skip=rng.randint(0, 3))
    finally:
        if proc.poll() is None:
            sigkill(proc)
    assert proc.returncode == -signal.SIGKILL, outputs(tmp_path)
    return {"ckdir": ckdir, "caught": caught, "ckpt_every": ckpt_every}


def _sleep(proc, seconds):
    """Let ``proc`` run for ``seconds``; it must not exit meanwhile."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError(f"the process exited early ({proc.returncode})")


def _trial(tmp_path, seed: int, mode: str, compare: bool) -> None:
    rng = random.Random(seed)
    make_dataset(tmp_path)
    killed = _kill_train(tmp_path, rng, mode)
    ckdir, run = killed["ckdir"], tmp_path / RUN
    files = [p for p in ckdir.iterdir()] if ckdir.is_dir() else []
    if not any(p.name.endswith(".pt") for p in files):  # killed before the first checkpoint was complete
        r = run_sagan("train", "--resume", "latest", "--steps", 5, "--device", "cpu", cwd=tmp_path, env=ONE_THREAD)
        assert_one_line_error(r, "no checkpoint found")
        return

    steps = checkpoint_steps(ckdir)  # every visible file loads, each step file holds its own step
    newest = max(steps.values())
    leftovers = temp_files(ckdir)
    if killed["caught"]:
        assert killed["caught"] in leftovers, "the kill did not land mid-write"
    from sagan_cli.train.runs import latest_checkpoint

    assert load(latest_checkpoint(tmp_path / "runs"))["step"] == newest, "'latest' is not the newest complete checkpoint"
    before = (run / "metrics.jsonl").read_text().splitlines()
    assert [r["step"] for r in metric_records(run)][:newest] == list(range(1, newest + 1))
    for png in (run / "samples").glob("step-*.png"):
        from PIL import Image

        Image.open(png).verify()  # samples are written atomically too

    r = run_sagan("train", "--resume", "latest", "--steps", newest + 2, "--device", "cpu", cwd=tmp_path, env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    assert f"from step {newest} " in r.stdout, r.stdout
    assert temp_files(ckdir) == [], "the resumed run did not remove what the killed write left"
    after = checkpoint_steps(ckdir)
    assert after["latest.pt"] == newest + 2
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert lines[:newest] == before[:newest], "metrics before the checkpoint were lost or rewritten"
    assert {json.loads(x)["step"] for x in lines} >= set(range(1, newest + 3))
    if compare:
        r = run_sagan("train", *TINY, "--data", DATA, "--steps", newest + 2, "--batch", 8, "--runs", "straight",
                      "--log-every", 1000, "--sample-every", 1000, cwd=tmp_path, env=ONE_THREAD)
        assert r.returncode == 0, r.stderr
        assert_same_weights(load(ckdir / "latest.pt"), load(tmp_path / "straight/00000-tiny-32/checkpoints/latest.pt"))


@pytest.mark.parametrize("seed,mode,compare", DEFAULT_TRIALS)
def test_sigkill_train_then_resume(tmp_path, seed, mode, compare):
    _trial(tmp_path, seed, mode, compare)


@pytest.mark.slow
@pytest.mark.parametrize("seed,mode,compare", SLOW_TRIALS)
def test_sigkill_train_then_resume_more_trials(tmp_path, seed, mode, compare):
    _trial(tmp_path, seed, mode, compare)


# ------------------------------------------------------------------ prepare
def _prep(count: int) -> tuple:
    return ("prepare", "synthetic", "--imsize", 32, "--count", count, "--workers", 2)


_REFERENCE: dict[int, str] = {}


def _reference_digest(tmp_path_factory, count: int) -> str:
    if count not in _REFERENCE:
        ref = tmp_path_factory.mktemp("prepare-ref")
        r = run_sagan(*_prep(count), "--out", "ds", cwd=ref)
        assert r.returncode == 0, r.stderr
        _REFERENCE[count] = hashlib.sha256((ref / "ds" / "images.npy").read_bytes()).hexdigest()
    return _REFERENCE[count]


def _committed(ds):
    from sagan_cli.data.prepare.state import read_progress

    return lambda: ((read_progress(ds) or {}).get("written", 0) > 0)


def _prepare_trial(tmp_path, tmp_path_factory, cli, seed: int, mode: str, count: int) -> None:
    """``early``: killed within 0.3 s of the work starting (the run takes seconds);
    ``after-commit``: killed up to 1 s after a commit recorded some images (commits come every 2 s)."""
    rng = random.Random(1000 + seed)
    ds = tmp_path / "ds"
    proc = popen_sagan(*_prep(count), "--out", "ds", cwd=tmp_path, start_new_session=True)
    try:
        if mode == "early":
            wait_until(lambda: (ds / "images.npy").exists(), proc, timeout=60, what="the work to start")
            _sleep(proc, rng.uniform(0.0, 0.3))
        else:
            wait_until(_committed(ds), proc, timeout=120, what="a commit with images in it")
            _sleep(proc, rng.uniform(0.0, 1.0))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the parent and its decoding workers
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    from sagan_cli.data.prepare.state import read_progress

    done = (read_progress(ds) or {}).get("written", 0)
    r = cli("train", *TINY, "--data", "ds", "--steps", 2)
    assert_one_line_error(r, "ds is not a complete prepared dataset", "to finish it")
    r = run_sagan(*_prep(count), "--out", "ds", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256((ds / "images.npy").read_bytes()).hexdigest() == _reference_digest(tmp_path_factory, count)
    assert sorted(p.name for p in ds.iterdir()) == ["images.npy", "meta.json"], "leftovers"
    got = open_dataset(ds)
    assert len(got) == count
    if mode == "after-commit":
        assert done > 0
    if done:  # from the last commit: nothing it recorded is redone, nothing after it is lost
        assert f"resuming ds: {done} of {count} images done" in r.stdout
        assert got.meta["last_run"]["images"] == count - done
    np.testing.assert_array_equal(got.images[-1], render(0, count - 1, 32))


# Sized for margin: at 32 px this machine prepares about 3,400 img/s with 2 workers, so 10000 images
# take ~3 s against a kill within 0.3 s, and 33000 take ~10 s against one within 1 s of a 2 s commit.
EARLY, AFTER_COMMIT = 10000, 33000


def test_sigkill_prepare_then_rerun(tmp_path, tmp_path_factory, cli):
    _prepare_trial(tmp_path, tmp_path_factory, cli, 0, "early", EARLY)


@pytest.mark.slow
@pytest.mark.parametrize("seed,mode", [(1, "after-commit"), (2, "early"), (3, "after-commit"), (4, "after-commit")])
def test_sigkill_prepare_then_rerun_more_trials(tmp_path, tmp_path_factory, cli, seed, mode):
    _prepare_trial(tmp_path, tmp_path_factory, cli, seed, mode, EARLY if mode == "early" else AFTER_COMMIT)


# ------------------------------------------------------------------ the two windows a random kill rarely hits
class _Crash(BaseException):
    """Stands for SIGKILL in-process: nothing after it runs, no handler sees it."""


def test_a_crash_between_writing_step_n_and_re_pointing_latest_pt(cli, tmp_path, tmp_path_factory, monkeypatch):
    """step-N.pt is complete but latest.pt still holds N-k: 'latest' (resume, sample) means step N."""
    from sagan_cli.train import checkpoint
    from sagan_cli.train.runs import latest_checkpoint

    populate(tmp_path, tmp_path_factory)  # a run with checkpoints at steps 1 and 2

    def crash(src, dst):
        raise _Crash

    monkeypatch.setattr(checkpoint, "atomic_link_or_copy", crash)
    with pytest.raises(_Crash):
        cli("train", "--resume", "latest", "--steps", 5, "--ckpt-every", 2, "--device", "cpu")
    ckdir = tmp_path / RUN / "checkpoints"
    assert checkpoint_steps(ckdir) == {"latest.pt": 2, "step-0000001.pt": 1, "step-0000002.pt": 2, "step-0000004.pt": 4}
    assert latest_checkpoint(tmp_path / "runs") == ckdir / "step-0000004.pt"
    monkeypatch.setattr(checkpoint, "atomic_link_or_copy", atomic_link_or_copy)
    r = cli("sample", "-n", 4, "--out", "s.png", "--device", "cpu")
    assert r.code == 0 and "(step 4," in r.stdout, r.stdout
    r = cli("train", "--resume", "latest", "--steps", 6, "--device", "cpu")
    assert r.code == 0 and "from step 4 " in r.stdout, r.stderr
    assert checkpoint_steps(ckdir)["latest.pt"] == 6


def test_a_run_resumed_from_an_earlier_checkpoint_is_the_one_latest_follows(cli, tmp_path, tmp_path_factory):
    """'Newest' is by time written, not step number: after `--resume step-0000001.pt`, the new line of
    checkpoints is followed, not the abandoned step-0000002.pt."""
    from sagan_cli.train.runs import latest_checkpoint

    populate(tmp_path, tmp_path_factory)
    ckdir = tmp_path / RUN / "checkpoints"
    os.utime(ckdir / "step-0000002.pt", (1, 1))  # written long ago (also latest.pt: a hard link)
    os.utime(ckdir / "step-0000001.pt", (1, 1))
    r = cli("train", "--resume", ckdir / "step-0000001.pt", "--steps", 2, "--log-every", 1, "--device", "cpu")
    assert r.code == 0, r.stderr
    assert latest_checkpoint(tmp_path / "runs") == ckdir / "latest.pt"
    assert (ckdir / "latest.pt").samefile(ckdir / "step-0000002.pt")


def test_temp_files_of_a_killed_write_are_removed_by_the_next_save(cli, tmp_path, tmp_path_factory):
    populate(tmp_path, tmp_path_factory)
    ckdir = tmp_path / RUN / "checkpoints"
    junk = [".step-0000003.pt.a1b2c3.tmp", ".latest.pt.link.tmp", ".latest.pt.d4e5f6.tmp"]
    for name in junk:
        (ckdir / name).write_bytes(b"PK\x03\x04 half a checkpoint")
    (ckdir / "notes.txt").write_text("mine")  # not ours: left alone
    r = cli("train", "--resume", "latest", "--steps", 3, "--device", "cpu")
    assert r.code == 0, r.stderr
    assert sorted(p.name for p in ckdir.iterdir()) == ["latest.pt", "notes.txt", "step-0000001.pt", "step-0000002.pt",
                                                        "step-0000003.pt"]


def test_after_kill_and_resume_metrics_hold_one_record_per_step(cli, tmp_path, tmp_path_factory, monkeypatch):
    from sagan_cli.train import log as logmod

    populate(tmp_path, tmp_path_factory, run=False)
    real = logmod.TrainLogger.log

    def log_then_die(self, rec):
        real(self, rec)
        if rec["step"] == 5:  # logged step 5; the newest checkpoint is step 4
            raise _Crash

    monkeypatch.setattr(logmod.TrainLogger, "log", log_then_die)
    with pytest.raises(_Crash):
        cli("train", *TINY, "--data", DATA, "--steps", 10, "--batch", 8, "--ckpt-every", 4, "--log-every", 1,
            "--sample-every", 1000)
    monkeypatch.setattr(logmod.TrainLogger, "log", real)
    assert cli("train", "--resume", "latest", "--steps", 6, "--device", "cpu").code == 0
    assert [r["step"] for r in metric_records(tmp_path / RUN)] == [1, 2, 3, 4, 5, 6]
