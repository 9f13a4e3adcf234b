"""`sagan train --nproc K`: K training processes on this machine through torch's elastic launcher.

This is what ``torchrun --standalone --nproc-per-node K -m sagan_cli train ...`` does,
run in-process so that the outcome comes back as one line: which rank failed and
how, or that Ctrl-C / SIGTERM stopped every rank after rank 0 saved a checkpoint.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid

from sagan_cli.util.device import usable_cores
from sagan_cli.util.errors import SaganError
from sagan_cli.util.errors import EXIT_PEER_LOST

# Time the ranks get to agree on a stop and let rank 0 write its checkpoint after
# Ctrl-C or SIGTERM, before the launcher kills them.
SHUTDOWN_TIMEOUT_S = 120


def strip_nproc(argv: list[str]) -> list[str]:
    """``argv`` (the words after ``train``) without ``--nproc K`` / ``--nproc=K``."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--nproc":
            skip = True
        elif not word.startswith("--nproc="):
            out.append(word)
    return out


def _describe(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def root_cause(failures: dict) -> tuple[int, object]:
    """The failure to name among the ranks that failed: ``(rank, failure)``.

    A rank that exits with EXIT_PEER_LOST only reacts to another's death, and torch's own
    ``get_first_failure`` cannot see that: it orders by a timestamp in whole seconds and
    breaks ties by the order the ranks were polled, so a fast rank 0 that noticed rank 1's
    SIGKILL could be blamed for it. Peer-lost exits go last, then the earliest, then the lowest rank.
    """
    rank = min(failures, key=lambda r: (failures[r].exitcode == EXIT_PEER_LOST, failures[r].timestamp, r))
    return rank, failures[rank]


def _newest(outdir) -> str:
    from sagan_cli.train.runs import latest_checkpoint

    try:
        return f"newest checkpoint {latest_checkpoint(outdir)} (continue with `sagan train --resume latest`)"
    except SaganError:
        return "no checkpoint was written"


def launch_local(nproc: int, train_argv: list[str], outdir, say) -> int:
    """Run ``sagan train`` in ``nproc`` processes; returns the exit code for this process."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # Our one-line summary replaces the agent's own reports (its modules set their own levels).
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    if "OMP_NUM_THREADS" not in os.environ:  # share the cores instead of oversubscribing them
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // nproc))
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
        rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
    )
    say(f"launching {nproc} training processes (torch elastic, standalone rendezvous)")
    try:
        elastic_launch(config, sys.executable)("-u", "-m", "sagan_cli", "train", *train_argv)
    except ChildFailedError as exc:
        rank, failure = root_cause(exc.failures)
        code = failure.exitcode
        raise SaganError(
            f"training process rank {rank} {_describe(code)}; the other processes were stopped "
            "(no checkpoint is written after a failure; `sagan train --resume latest` continues from the last one)",
            exit_code=code if 0 < code < 128 else EXIT_PEER_LOST,
        ) from None
    except SignalException as exc:
        sig = signal.Signals(exc.sigval)
        say(f"{sig.name}: all {nproc} processes were told to stop; {_newest(outdir)}")
        return 143 if sig == signal.SIGTERM else (0 if sig == signal.SIGINT else 128 + sig.value)
    return 0
