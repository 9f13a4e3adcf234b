"""One trainer at a time holds a run: a second `train --resume` of a run in use is refused with one line naming
the holder, and a killed trainer leaves no lock behind (the kernel drops a flock with its process)."""

from __future__ import annotations

import json
import os
import signal

import torch

from conftest import TINY, assert_one_line_error, run_sagan
from faults_helpers import ONE_THREAD, popen_sagan, wait_until
from sagan_cli.train.runs import LOCK, lock_run


def _steps(path):
    try:
        return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError, KeyError):
        return []


def test_a_run_in_use_is_refused_and_free_again_when_its_holder_lets_go(cli, tiny_dataset, tmp_path):
    assert cli("train", *TINY, "--data", tiny_dataset, "--steps", "2", "--batch", "8").code == 0
    run = tmp_path / "runs" / "00000-tiny-32"
    metrics_before = (run / "metrics.jsonl").read_text()
    held = lock_run(run)  # as a trainer in another process would hold it
    try:
        for how in (["--resume", "latest"], ["--resume", str(run / "checkpoints" / "latest.pt")]):
            r = cli("train", *how, "--steps", "4", "--device", "cpu")
            assert_one_line_error(r, f"runs/00000-tiny-32 is in use by PID {os.getpid()} on ")
        assert (run / "metrics.jsonl").read_text() == metrics_before  # nothing trimmed, nothing appended
    finally:
        held.release()
    r = cli("train", "--resume", "latest", "--steps", "4", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert _steps(run / "metrics.jsonl")[-1] == 4
    assert (run / LOCK).exists()


def test_a_second_trainer_is_refused_while_the_first_trains_and_a_killed_one_leaves_the_run_free(tiny_dataset, tmp_path):
    proc = popen_sagan("train", *TINY, "--data", tiny_dataset, "--steps", 100000, "--batch", 8, "--log-every", 1,
                       "--ckpt-every", 2, cwd=tmp_path)
    run = tmp_path / "runs" / "00000-tiny-32"
    try:
        wait_until(lambda: (run / "checkpoints" / "latest.pt").exists() and len(_steps(run / "metrics.jsonl")) >= 3,
                   proc, timeout=120, what="the first checkpoint")
        second = run_sagan("train", "--resume", "latest", "--steps", 100000, "--device", "cpu", cwd=tmp_path, env=ONE_THREAD)
        assert second.returncode == 2
        err = second.stderr.strip()
        assert err == f"error: run runs/00000-tiny-32 is in use by PID {proc.pid} on {os.uname().nodename} " \
                      "(a trainer holds its lock); wait for it to finish or stop it first", err
        assert proc.poll() is None  # the first one trains on
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    # the killed trainer's lock went with it: the run resumes at once
    step = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["step"]
    third = run_sagan("train", "--resume", "latest", "--steps", step + 1, "--device", "cpu", cwd=tmp_path, env=ONE_THREAD)
    assert third.returncode == 0, third.stderr
    assert f"finished at step {step + 1}" in third.stdout
