"""Worker functions for tests that start real torch.distributed (gloo) process groups.

They live in their own module so that spawned processes can import them.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

WORLD = 2


def global_batch():
    """A BN input with a large mean (exercises the shifted sums) and upstream gradients."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, 5, 5, generator=g) * 3.0 + 5.0
    up = torch.randn(8, 4, 5, 5, generator=g)
    weight = torch.rand(4, generator=g) + 0.5
    bias = torch.randn(4, generator=g)
    return x, up, weight, bias


def sync_bn_and_replicas_worker(rank: int, store: str, out: str) -> None:
    from torch import nn

    from sagan_cli.train.distributed import DistContext, SyncBatchNorm2d, broadcast_bn_stats_, replicas_identical

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    ctx = DistContext(rank=rank, world=WORLD, local_rank=rank)
    try:
        x, up, weight, bias = global_batch()
        shard = ctx.shard(x.shape[0])
        bn = SyncBatchNorm2d(4)
        with torch.no_grad():
            bn.weight.copy_(weight)
            bn.bias.copy_(bias)
        xl = x[shard].clone().requires_grad_(True)
        y = bn(xl)
        (y * up[shard]).sum().backward()  # the global loss is the sum of the ranks' losses
        wg, bg = bn.weight.grad.clone(), bn.bias.grad.clone()
        dist.all_reduce(wg)
        dist.all_reduce(bg)

        net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
        torch.manual_seed(1)
        net[0].reset_parameters()
        same_start = replicas_identical([net], ctx)
        if rank == 1:
            with torch.no_grad():
                net[0].weight[0, 0] += 1e-6
        differs_param = not replicas_identical([net], ctx)
        if rank == 1:
            with torch.no_grad():
                net[0].weight[0, 0] -= 1e-6
                net[1].running_mean += 0.5  # a rank-local buffer, as without --sync-bn
        differs_buffer = not replicas_identical([net], ctx)
        broadcast_bn_stats_([net], ctx)
        same_after_broadcast = replicas_identical([net], ctx)
        # a spectral-norm power-iteration vector that drifted on one rank is not papered over
        sn = nn.utils.parametrizations.spectral_norm(nn.Linear(3, 3))
        torch.manual_seed(2)
        sn.parametrizations.weight.original.data.normal_()
        sn.parametrizations.weight[0]._u.data.normal_()
        if rank == 1:
            sn.parametrizations.weight[0]._u.data[0] += 1e-6
        broadcast_bn_stats_([sn], ctx)
        differs_sn_u = not replicas_identical([sn], ctx)
        torch.save({
            "y": y.detach(), "x_grad": xl.grad, "w_grad": wg, "b_grad": bg,
            "running_mean": bn.running_mean, "running_var": bn.running_var,
            "flags": [same_start, differs_param, differs_buffer, same_after_broadcast, differs_sn_u],
        }, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def stuck_peer_worker(rank: int, store: str, out: str) -> None:
    """Rank 1 never joins the collective (a hung process); rank 0's all-reduce must time out, not hang,
    and become the one-line peer-lost error."""
    import time
    from datetime import timedelta

    from sagan_cli.train.distributed import DistContext, all_mean_, exit_now, is_collective_failure, peer_lost

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD,
                            timeout=timedelta(seconds=2))
    ctx = DistContext(rank=rank, world=WORLD, local_rank=rank)
    if rank == 1:
        time.sleep(8)  # stuck past rank 0's timeout
        return
    t0 = time.time()
    try:
        all_mean_(torch.ones(3), ctx)
        result = {"raised": False}
    except Exception as exc:  # noqa: BLE001 - the test looks at what it was
        err = peer_lost(ctx, 7, exc, None)
        result = {"raised": True, "collective": is_collective_failure(exc), "message": str(err),
                  "code": err.exit_code}
    result["waited"] = time.time() - t0
    (Path(out) / "rank0.json").write_text(__import__("json").dumps(result))
    if result["raised"]:
        exit_now(result["code"])  # what `sagan` does after printing the error
