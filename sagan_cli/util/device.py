"""`--device auto|cpu|cuda|cuda:N|mps`: parse, check it exists, return a torch.device."""

from __future__ import annotations

import os
import re

from sagan_cli.util.errors import SaganError

DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps (auto: CUDA, then MPS, then CPU)"
_PATTERN = re.compile(r"^(auto|cpu|mps|cuda)(?::(\d+))?$")


def validate_device_string(spec: str) -> str:
    """Syntax check only (no torch import): used by the CLI before heavy work starts."""
    spec = spec.strip().lower()
    m = _PATTERN.match(spec)
    if not m or (m.group(2) is not None and m.group(1) != "cuda"):
        raise SaganError(f"--device {spec!r} is not one of: {DEVICE_HELP}")
    return spec


def resolve_device(spec: str):
    """The torch.device for ``spec``; a clear error when that device is not on this machine."""
    import torch

    spec = validate_device_string(spec)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise SaganError("--device mps: MPS (Apple GPU) is not available on this machine; use --device cpu")
        return torch.device("mps")
    # cuda / cuda:N
    if not torch.cuda.is_available():
        why = "this PyTorch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise SaganError(f"--device {spec}: CUDA is not available ({why}); use --device cpu or auto")
    index = int(spec.split(":")[1]) if ":" in spec else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise SaganError(f"--device {spec}: only {count} CUDA device(s) visible (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def describe(device) -> str:
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask (taskset, a CPU-limited container's
    cpuset), which ``os.cpu_count()`` ignores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)
