"""Two nodes (#17 item 7): two torchrun agents on this machine, one process each, meeting through a c10d
rendezvous on 127.0.0.1, are the job docs/distributed.md runs on two machines (there: the head node's address)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from conftest import REPO, TINY, run_sagan
from sagan_cli.train.checkpoint import load_checkpoint

COMMON = ("--steps", "4", "--batch", "8", "--seed", "3", "--ckpt-every", "2", "--log-every", "2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _max_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for net in ("G", "D", "G_ema"):
        assert a[net].keys() == b[net].keys()
        for k, v in a[net].items():
            if v.is_floating_point():
                worst = max(worst, (v - b[net][k]).abs().max().item())
    return worst


def test_two_torchrun_nodes_write_one_run_with_the_weights_of_two_local_processes(tmp_path, tiny_dataset):
    # ~65 CPU-seconds in all (67 s of wall time on a shared 2-core machine at load 5): not marked slow
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")  # one thread per rank, as the torchrun test
    port = _free_port()
    agents = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
             "--node-rank", str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
             "--rdzv-id", "sagan-test", "--rdzv-conf", f"is_host={int(node == 0)}", "--local-addr", "127.0.0.1",
             "-m", "sagan_cli", "train", *TINY, "--data", str(tiny_dataset), "--runs", "nodes", *COMMON],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node in (0, 1)
    ]
    outs = []
    try:
        for agent in agents:
            outs.append(agent.communicate(timeout=300))
    finally:
        for agent in agents:
            if agent.poll() is None:
                agent.kill()
    for agent, (out, err) in zip(agents, outs):
        assert agent.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
    [run] = (tmp_path / "nodes").iterdir()  # one run directory for both nodes
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.pt", "step-0000002.pt", "step-0000004.pt"]
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2, "only rank 0 logs"
    speakers = [out for out, _ in outs if "finished at step 4" in out]
    assert len(speakers) == 1, "one node (the one holding rank 0) reports; the other is silent"
    assert speakers[0].count("2 replicas identical") == 2
    ck = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert ck["world_size"] == 2 and ck["step"] == 4 and ck["images_seen"] == 32

    # the same job in two processes of one machine: bit for bit the same weights (G, D and the EMA)
    res = run_sagan("train", *TINY, "--data", tiny_dataset, "--runs", "local", "--nproc", "2", *COMMON,
                    cwd=tmp_path, timeout=300, env={"OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr
    [local] = (tmp_path / "local").iterdir()
    assert _max_diff(ck, load_checkpoint(local / "checkpoints" / "latest.pt")) == 0.0
