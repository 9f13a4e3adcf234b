"""Data-parallel training on torch.distributed: one process per device, launched by torchrun.

A run with W processes trains on the same *global* batch as a single process would:
each rank takes its slice of every global batch and of every global noise batch,
DistributedDataParallel averages the gradients, and G's BatchNorm statistics are
taken over the global batch (``--sync-bn``). So the data order and the noise do
not depend on W, and a checkpoint resumes under any world size that divides the
batch. Only rank 0 writes anything; collectives that fail (a peer died, a hang past
the timeout) become a one-line error instead of a hang.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from sagan_cli.util.errors import EXIT_PEER_LOST, SaganError

# A rank that lost its peers exits with this code (2 is bad input, 3 divergence).
DEFAULT_TIMEOUT_S = 600


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's slice of a global batch of ``n`` (n divisible by world)."""
        per = n // self.world
        return slice(self.rank * per, (self.rank + 1) * per)


SINGLE = DistContext()


def context_from_env(environ=os.environ) -> DistContext:
    """The process's place in a torchrun job (RANK/WORLD_SIZE/LOCAL_RANK), or SINGLE."""
    if "WORLD_SIZE" not in environ:
        return SINGLE
    try:
        world = int(environ["WORLD_SIZE"])
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise SaganError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (they are set by torchrun)") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise SaganError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
    return DistContext(rank=rank, world=world, local_rank=local)


def check_batch(batch: int, world: int) -> None:
    if batch % world:
        raise SaganError(
            f"--batch {batch} is the global batch and must divide evenly over {world} processes "
            f"(try --batch {max(world, batch - batch % world)})"
        )


def device_for(ctx: DistContext, spec: str) -> torch.device:
    """Each rank's device: cuda → cuda:LOCAL_RANK, cpu → cpu. Explicit indices and MPS are refused."""
    from sagan_cli.util.device import resolve_device, validate_device_string

    spec = validate_device_string(spec)
    if spec.startswith("cuda:"):
        raise SaganError(f"--device {spec}: with several processes each uses cuda:LOCAL_RANK; pass --device cuda (or auto)")
    if spec == "mps":
        raise SaganError("--device mps: distributed training needs CUDA (NCCL) or CPU (gloo)")
    device = resolve_device(spec)
    if device.type == "mps":  # auto picked MPS
        device = torch.device("cpu")
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if ctx.local_rank >= count:
            raise SaganError(f"LOCAL_RANK {ctx.local_rank} but only {count} CUDA device(s) visible on this node")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    return device


def init(ctx: DistContext, device: torch.device, timeout_s: int = DEFAULT_TIMEOUT_S) -> None:
    """Join the process group: NCCL on CUDA, gloo on CPU; rendezvous from torchrun's environment."""
    from datetime import timedelta

    if not ctx.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {}
    if device.type == "cuda" and "device_id" in inspect.signature(dist.init_process_group).parameters:
        kwargs["device_id"] = device  # binds NCCL to this rank's GPU up front (torch >= 2.3)
    try:
        dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world, timeout=timedelta(seconds=timeout_s), **kwargs)
    except (RuntimeError, ValueError) as exc:
        raise SaganError(f"could not join the process group ({backend}): {_first_line(exc)}", EXIT_PEER_LOST) from None


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _first_line(exc: BaseException) -> str:
    """The gist of a (backend) error: first line, no source-location prefix or boilerplate advice."""
    import re

    text = str(exc).strip().splitlines()
    line = re.sub(r"^\[[^\]]*\]\s*", "", text[0]) if text else type(exc).__name__
    return line.split(". This is typically")[0].rstrip(".")[:300]


def is_collective_failure(exc: BaseException) -> bool:
    """True for errors that mean the other ranks are gone or stuck (not bugs in our code)."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        k in text for k in ("gloo", "nccl", "connection closed", "connection reset", "timed out", "broken pipe", "c10d")
    )


def exit_now(code: int) -> None:
    """End a process whose process group is broken, skipping interpreter shutdown: after a timed-out gloo
    collective, the group's C++ destructors can call std::terminate (SIGABRT, 'terminate called without an
    active exception') and hide the exit code. Everything that matters is already on disk or printed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def peer_lost(ctx: DistContext, step: int, exc: BaseException, last_checkpoint) -> SaganError:
    last = f"the last complete checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written"
    return SaganError(
        f"lost contact with the other training processes at step {step} "
        f"({_first_line(exc)}); stopped without writing a checkpoint; {last}",
        EXIT_PEER_LOST,
    )


# ----------------------------------------------------------------- collectives
def all_mean_(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    if ctx.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(ctx.world)
    return t


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op with one process)."""
    if ctx.enabled:
        dist.barrier()


def all_max(value: int, ctx: DistContext, device: torch.device) -> int:
    """The largest ``value`` over ranks (one tiny collective; identity for one process)."""
    if not ctx.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def broadcast_bn_stats_(modules, ctx: DistContext) -> None:
    """Give every rank rank 0's BatchNorm running statistics.

    Without --sync-bn each rank's statistics reflect its own last shard (DDP re-broadcasts
    them only at the start of the next forward); doing it before a checkpoint makes the saved
    state the one every replica continues from. Spectral-norm u/v vectors are left alone on
    purpose: they must already agree, and ``replicas_identical`` checks that they do.
    """
    if ctx.enabled:
        for m in modules:
            for sub in m.modules():
                if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                    for b in sub.buffers(recurse=False):
                        dist.broadcast(b, src=0)


def replicas_identical(modules, ctx: DistContext) -> bool:
    """Whether every rank holds bit-identical parameters and buffers for ``modules``.

    Compares each rank's flattened state with the element-wise max and min over
    ranks: equal to both on every rank means all replicas agree.
    """
    if not ctx.enabled:
        return True
    tensors = [t.detach().float().reshape(-1) for m in modules for t in m.state_dict().values()
               if isinstance(t, torch.Tensor) and t.is_floating_point()]
    flat = torch.cat(tensors)
    hi, lo = flat.clone(), flat.clone()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    same = torch.tensor([int(torch.equal(hi, flat) and torch.equal(lo, flat))], device=flat.device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item())


# -------------------------------------------------------------- synchronised BN
class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is again the sum over ranks (d(Σ_r L_r)/dx)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch (all ranks).

    Works on any backend (torch's ``nn.SyncBatchNorm`` is GPU-only). The per-channel
    sums are shifted by the running mean before squaring (less cancellation) and
    all-reduced with an autograd-aware collective, so the backward pass is the
    exact gradient of the global-batch normalisation. State-dict compatible with
    ``nn.BatchNorm2d``; with one process or in eval mode it *is* BatchNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        world = dist.get_world_size()
        c = x.shape[1]
        xf = x.float()
        shift = self.running_mean.detach().float().view(1, c, 1, 1)
        d = xf - shift
        sums = _AllReduceSum.apply(torch.cat([d.sum(dim=(0, 2, 3)), (d * d).sum(dim=(0, 2, 3))]))
        n = x.numel() // c * world
        mean_d = sums[:c] / n
        var = (sums[c:] / n - mean_d * mean_d).clamp_min(0.0)
        mean = mean_d + shift.view(c)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), m)
                self.running_var.lerp_((var * n / max(n - 1, 1)).to(self.running_var.dtype), m)
        scale = torch.rsqrt(var + self.eps)
        if self.affine:
            scale = scale * self.weight
        y = (xf - mean.view(1, c, 1, 1)) * scale.view(1, c, 1, 1)
        if self.affine:
            y = y + self.bias.view(1, c, 1, 1)
        return y.to(x.dtype)


def convert_sync_bn(module: nn.Module) -> nn.Module:
    """Swap every BatchNorm2d in ``module`` for SyncBatchNorm2d, keeping parameters and buffers."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, SyncBatchNorm2d):
            new = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats,
                                  device=child.running_mean.device if child.running_mean is not None else None)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_sync_bn(child)
    return module
