"""Multi-process training (issue #5): gloo on CPU, two ranks, through `sagan train --nproc 2`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TINY, assert_one_line_error, run_sagan
from distributed_helpers import WORLD, global_batch, sync_bn_and_replicas_worker
from sagan_cli.data.loader import EpochSampler
from sagan_cli.train.checkpoint import load_checkpoint
from sagan_cli.train.distributed import context_from_env
from sagan_cli.util.errors import EXIT_PEER_LOST
from sagan_cli.train import launch
from sagan_cli.train.launch import root_cause, strip_nproc



def _train(tmp_path, data, *extra, outdir="runs", env=None):
    res = run_sagan("train", *TINY, "--data", data, "--runs", outdir, *extra, cwd=tmp_path, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    return res


def _max_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for net in ("G", "D"):
        assert a[net].keys() == b[net].keys()
        for k, v in a[net].items():
            if v.is_floating_point():
                worst = max(worst, (v - b[net][k]).abs().max().item())
    return worst


# ------------------------------------------------------------------ pure logic
@pytest.mark.parametrize("world", [2, 4])
def test_sampler_shards_are_disjoint_and_form_the_single_process_batches(world):
    one = EpochSampler(40, 8, seed=3)
    ranks = [EpochSampler(40, 8, seed=3, rank=r, world=world) for r in range(world)]
    for _ in range(12):  # crosses two epoch boundaries (5 batches per epoch)
        shards = [s.next_indices() for s in ranks]
        assert sum(len(s) for s in shards) == 8
        assert len(np.unique(np.concatenate(shards))) == 8, "shards overlap"
        assert np.array_equal(np.sort(np.concatenate(shards)), one.next_indices())
    assert all(s.state_dict() == one.state_dict() for s in ranks)


def test_sampler_state_resumes_under_another_world_size():
    a = EpochSampler(40, 8, seed=1)
    for _ in range(7):
        a.next_indices()
    st = a.state_dict()
    b = [EpochSampler(40, 8, rank=r, world=2, **st) for r in range(2)]
    for _ in range(4):
        assert np.array_equal(np.sort(np.concatenate([s.next_indices() for s in b])), a.next_indices())


def test_strip_nproc_and_environment_parsing():
    assert strip_nproc(["--nproc", "2", "--steps", "3", "--nproc=4", "--data", "d"]) == ["--steps", "3", "--data", "d"]
    ctx = context_from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"})
    assert (ctx.rank, ctx.world, ctx.local_rank, ctx.enabled, ctx.is_main) == (2, 4, 0, True, False)
    assert ctx.shard(8) == slice(4, 6)
    assert not context_from_env({}).enabled


def _failure(rank, exitcode, timestamp):
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

    failure = ProcessFailure(local_rank=rank, pid=1000 + rank, exitcode=exitcode, error_file="/nonexistent")
    failure.timestamp = timestamp
    return failure


def test_the_rank_that_died_is_named_not_the_one_that_lost_it():
    """torch elastic stamps failures in whole seconds and, on a tie, blames the rank it polled first: a
    rank 0 that exited 4 (peer lost) in the same second as rank 1's SIGKILL was named as the cause."""
    lost, killed = _failure(0, EXIT_PEER_LOST, 100), _failure(1, -signal.SIGKILL, 100)
    assert root_cause({0: lost, 1: killed}) == (1, killed)
    assert root_cause({0: lost, 1: _failure(1, -signal.SIGKILL, 101)})[0] == 1  # even when recorded later
    assert root_cause({0: _failure(0, 1, 101), 1: _failure(1, 1, 100)})[0] == 1  # else the earliest
    assert root_cause({0: _failure(0, 1, 100), 1: _failure(1, 1, 100)})[0] == 0  # then the lowest rank
    assert root_cause({1: lost, 0: _failure(0, EXIT_PEER_LOST, 100)})[0] == 0  # all lost: the lowest


def test_the_launcher_names_the_root_cause_and_shares_the_usable_cores(monkeypatch, tmp_path):
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    import torch.distributed.launcher.api as api

    seen = {}

    def fake_launch(config, entrypoint):
        def run(*args):
            seen["threads"] = os.environ["OMP_NUM_THREADS"]
            raise ChildFailedError("sagan_cli", {0: _failure(0, EXIT_PEER_LOST, 100),
                                                 1: _failure(1, -signal.SIGKILL, 100)})
        return run

    monkeypatch.setattr(api, "elastic_launch", fake_launch)
    monkeypatch.setenv("OMP_NUM_THREADS", "unset")  # recorded, so that what launch_local sets is undone
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))  # a 6-core cpuset on a bigger host
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    with pytest.raises(launch.SaganError) as info:
        launch.launch_local(2, [], tmp_path, lambda line: None)
    assert seen["threads"] == "3"
    assert str(info.value).startswith("training process rank 1 was killed by SIGKILL;")
    assert info.value.exit_code == EXIT_PEER_LOST


def test_sync_bn_matches_global_batchnorm_and_replica_check_detects_differences(tmp_path):
    """Two real gloo ranks: forward, input and weight gradients, running stats = BatchNorm2d on the whole batch."""
    import torch.multiprocessing as mp

    mp.start_processes(sync_bn_and_replicas_worker, args=(str(tmp_path / "store"), str(tmp_path)),
                       nprocs=WORLD, start_method="spawn")
    outs = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    x, up, weight, bias = global_batch()
    ref = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        ref.weight.copy_(weight)
        ref.bias.copy_(bias)
    xg = x.clone().requires_grad_(True)
    y = ref(xg)
    (y * up).sum().backward()
    close = dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([o["y"] for o in outs]), y.detach(), **close)
    torch.testing.assert_close(torch.cat([o["x_grad"] for o in outs]), xg.grad, **close)
    for o in outs:
        torch.testing.assert_close(o["w_grad"], ref.weight.grad, **close)
        torch.testing.assert_close(o["b_grad"], ref.bias.grad, **close)
        torch.testing.assert_close(o["running_mean"], ref.running_mean, **close)
        torch.testing.assert_close(o["running_var"], ref.running_var, **close)
        assert o["flags"] == [True, True, True, True, True], \
            "replica check: [equal, param differs, BN buffer differs, BN synced, spectral-norm u differs]"


# ------------------------------------------------------------------ CLI, two processes
def test_two_ranks_write_one_run_that_samples_and_resumes_in_one_process(tmp_path, tiny_dataset, cli):
    # with metrics during training: rank 0 evaluates while rank 1 waits at the barrier (#16 item 2)
    res = _train(tmp_path, tiny_dataset, "--nproc", "2", "--steps", "6", "--batch", "8",
                 "--ckpt-every", "3", "--log-every", "3", "--sample-every", "3",
                 "--eval-every", "3", "--eval-metrics", "mirror", "--eval-num", "8")
    runs = sorted((tmp_path / "runs").iterdir())
    assert [r.name for r in runs] == ["00000-tiny-32"], "exactly one run directory"
    run = runs[0]
    ckdir = run / "checkpoints"
    assert sorted(p.name for p in ckdir.iterdir()) == ["best.pt", "latest.pt", "step-0000003.pt", "step-0000006.pt"]
    assert res.stdout.count("checkpoint → ") == 2 and "2 replicas identical" in res.stdout
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in records if "kind" not in r]) == 2, "only rank 0 logs"
    evals = [r for r in records if r.get("kind") == "eval"]
    assert [e["step"] for e in evals] == [3, 6] and all(0 < e["mirror_error"] < 1 for e in evals), "rank 0 alone evaluates"
    ck = load_checkpoint(ckdir / "latest.pt")
    assert ck["step"] == 6 and ck["world_size"] == 2 and ck["images_seen"] == 48
    assert not any(k.startswith("module.") for k in ck["G"]), "the checkpoint holds the unwrapped modules"

    out = cli("sample", ckdir / "latest.pt", "--seeds", "0-3", "--out", tmp_path / "g.png", "--device", "cpu")
    assert out.code == 0, out.stderr
    assert (tmp_path / "g.png").stat().st_size > 0

    res = run_sagan("train", "--resume", "latest", "--steps", "8", "--device", "cpu", cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert load_checkpoint(ckdir / "latest.pt")["step"] == 8


@pytest.mark.slow  # ~15-30 s; tests/test_train_multinode.py runs torchrun (two agents) against --nproc 2 by default
def test_torchrun_runs_the_same_job_as_nproc(tmp_path, tiny_dataset):
    """`torchrun --standalone --nproc-per-node 2 -m sagan_cli train ...` (here its module form) is the documented
    multi-machine entry point: one run, rank 0 writing, and the same weights as `sagan train --nproc 2`."""
    common = ("--steps", "4", "--batch", "8", "--seed", "3", "--ckpt-every", "2", "--log-every", "2")
    # one thread per rank in both: bit-equality needs the same reduction order, and --nproc would
    # otherwise pick cores // 2 threads (more than one where the machine has more than 3 cores)
    _train(tmp_path, tiny_dataset, "--nproc", "2", *common, outdir="nproc", env={"OMP_NUM_THREADS": "1"})
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "sagan_cli", "train", *TINY, "--data", str(tiny_dataset), "--runs", "torchrun", *common],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    [run] = (tmp_path / "torchrun").iterdir()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.pt", "step-0000002.pt", "step-0000004.pt"]
    assert res.stdout.count("2 replicas identical") == 2
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2, "only rank 0 logs"
    ck = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ck["world_size"] == 2 and ck["step"] == 4
    [other] = (tmp_path / "nproc").iterdir()
    assert _max_diff(ck, load_checkpoint(other / "checkpoints" / "latest.pt")) == 0.0


def _train_here(cli, data, *extra, outdir):
    """The single-process reference run in this process (`cli`, cwd = tmp_path): no torch start-up to pay."""
    r = cli("train", *TINY, "--data", data, "--runs", outdir, *extra)
    assert r.code == 0, r.stderr


def test_sync_bn_two_ranks_half_batch_equal_one_rank_full_batch(tmp_path, tiny_dataset, cli):
    """One step: 2 ranks × 4 images with sync-BN give the 1 × 8 weights (to 1e-5); without it they don't."""
    common = ("--steps", "1", "--batch", "8", "--seed", "5")
    _train_here(cli, tiny_dataset, *common, outdir="one")
    _train(tmp_path, tiny_dataset, "--nproc", "2", *common, outdir="two")
    _train(tmp_path, tiny_dataset, "--nproc", "2", "--no-sync-bn", *common, outdir="two-local-bn")
    ck = {d: load_checkpoint(next((tmp_path / d).iterdir()) / "checkpoints/latest.pt") for d in ("one", "two", "two-local-bn")}
    assert _max_diff(ck["one"], ck["two"]) < 1e-5
    assert _max_diff(ck["one"], ck["two-local-bn"]) > 1e-4, "the comparison cannot tell BN statistics apart"


def test_resume_under_another_world_size_continues_the_same_run(tmp_path, tiny_dataset, cli):
    """1 process for 2 steps, then 2 processes to step 4 == 1 process for 4 steps (data and noise are global)."""
    common = ("--batch", "8", "--seed", "2", "--ckpt-every", "2")
    _train_here(cli, tiny_dataset, "--steps", "4", *common, outdir="straight")
    _train_here(cli, tiny_dataset, "--steps", "2", *common, outdir="switched")
    res = run_sagan("train", "--resume", "latest", "--runs", "switched", "--steps", "4", "--nproc", "2",
                    "--device", "cpu", cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    a = load_checkpoint(next((tmp_path / "straight").iterdir()) / "checkpoints/latest.pt")
    b = load_checkpoint(next((tmp_path / "switched").iterdir()) / "checkpoints/latest.pt")
    assert a["step"] == b["step"] == 4 and a["sampler"] == b["sampler"]
    assert _max_diff(a, b) < 1e-5


def _rank_pid(launcher_pid: int, rank: int) -> int | None:
    """The pid of training process ``rank`` started (indirectly) by ``launcher_pid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and any(e.startswith(b"TORCHELASTIC_RUN_ID=") for e in env):
            ppid = int(stat[1])
            while ppid > 1:  # walk up to the launcher
                if ppid == launcher_pid:
                    return int(entry.name)
                try:
                    ppid = int((Path("/proc") / str(ppid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except OSError:
                    break
    return None


def _start(tmp_path, data, *extra):
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.Popen(
        [sys.executable, "-m", "sagan_cli", "train", *TINY, "--data", str(data), "--nproc", "2", "--steps", "100000",
         "--batch", "8", "--log-every", "1000", *extra],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _wait_for(path: Path, proc, timeout=120):
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's pid through /proc")
def test_a_rank_that_dies_stops_the_job_with_one_clear_error(tmp_path, tiny_dataset):
    proc = _start(tmp_path, tiny_dataset, "--ckpt-every", "4")
    ckdir = tmp_path / "runs/00000-tiny-32/checkpoints"
    _wait_for(ckdir / "step-0000004.pt", proc)
    pid = _rank_pid(proc.pid, 1)
    assert pid is not None, "rank 1 not found"
    os.kill(pid, signal.SIGKILL)
    t0 = time.time()
    out, err = proc.communicate(timeout=120)
    assert time.time() - t0 < 60, "the surviving rank hung"
    assert proc.returncode == EXIT_PEER_LOST, (proc.returncode, err)
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: training process rank 1 was killed by SIGKILL"), err
    names = sorted(p.name for p in ckdir.iterdir())
    assert not [n for n in names if not n.endswith(".pt")], f"partial files left: {names}"
    for name in names:
        assert load_checkpoint(ckdir / name)["step"] % 4 == 0


def test_a_hung_peer_times_out_into_the_peer_lost_error(tmp_path):
    """--dist-timeout: a collective whose peer never arrives raises after the timeout (here 2 s) instead of
    waiting for ever, and the Trainer's handler turns it into `lost contact ...` with exit code 4."""
    import json

    import torch.multiprocessing as mp

    from distributed_helpers import stuck_peer_worker

    ctx = mp.start_processes(stuck_peer_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD,
                             start_method="spawn", join=False)
    for proc in ctx.processes:
        proc.join(timeout=60)
    # exit code 4, not SIGABRT: gloo's destructors can std::terminate after a timeout, so sagan skips them
    assert [p.exitcode for p in ctx.processes] == [EXIT_PEER_LOST, 0]
    res = json.loads((tmp_path / "rank0.json").read_text())
    assert res["raised"] and res["collective"], res
    assert res["waited"] < 7, res  # the timeout, not the peer waking up at 8 s
    assert res["code"] == EXIT_PEER_LOST
    assert res["message"].startswith("lost contact with the other training processes at step 7 (")
    assert "\n" not in res["message"]


# SIGTERM takes the same path as Ctrl-C (one handler, its own exit code): a long trial; Ctrl-C runs by default
@pytest.mark.parametrize("how,code", [("ctrl-c", 0), pytest.param("sigterm", 143, marks=pytest.mark.slow)])
def test_stop_signals_reach_every_rank_and_rank_0_saves(tmp_path, tiny_dataset, how, code):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and SIGTERM to the launcher."""
    proc = _start(tmp_path, tiny_dataset, "--ckpt-every", "5")
    ckdir = tmp_path / "runs/00000-tiny-32/checkpoints"
    _wait_for(ckdir / "step-0000005.pt", proc)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    ck = load_checkpoint(ckdir / "latest.pt")
    assert ck["step"] > 5 and ck["step"] % 10 == 0, "ranks agree to stop on a poll step and rank 0 saves there"
    assert "were told to stop" in out


def test_bad_distributed_options_are_one_line_errors(tmp_path, tiny_dataset, cli, monkeypatch):
    assert_one_line_error(cli("train", *TINY, "--data", tiny_dataset, "--nproc", "3", "--batch", "8"),
                          "global batch", "3 processes")
    assert_one_line_error(cli("train", "--nproc", "2", "--device", "cuda:1"), "--nproc 2", "cuda:1")
    assert_one_line_error(cli("train", "--nproc", "0"), "--nproc")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert_one_line_error(cli("train", "--nproc", "2"), "inside torchrun")
    monkeypatch.setenv("RANK", "x")
    assert_one_line_error(cli("train"), "must be integers")
