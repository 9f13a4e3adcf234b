"""Finding, checking and (only when asked) downloading the FID Inception weights.

Two published files hold the same TF 2015-12-05 weights under torchvision's module names:
``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid) and
``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity). They may differ in BatchNorm's
``num_batches_tracked`` counters (unused in eval) and in the serialisation format; ``load_inception``
accepts either, after mapping both onto one key set, and refuses anything else (strict check).

Lookup order: ``--inception-weights`` / ``$SAGAN_INCEPTION_WEIGHTS``; the torch hub cache
(``torch.hub.get_dir()/checkpoints/``, both names); ``~/.cache/sagan/`` (both names).
Nothing is fetched unless ``--download-weights`` is given.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import pickle
import urllib.parse
import warnings
import zipfile
from pathlib import Path
from typing import Callable

from sagan_cli.util import sniff
from sagan_cli.util.errors import SaganError

PYTORCH_FID_NAME = "pt_inception-2015-12-05-6726825d.pth"
TORCH_FIDELITY_NAME = "weights-inception-2015-12-05-6726825d.pth"
NAMES = (PYTORCH_FID_NAME, TORCH_FIDELITY_NAME)
PYTORCH_FID_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{PYTORCH_FID_NAME}"
TORCH_FIDELITY_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{TORCH_FIDELITY_NAME}"
SHA256_PREFIX = "6726825d"
ENV_WEIGHTS = "SAGAN_INCEPTION_WEIGHTS"
ENV_URL = "SAGAN_INCEPTION_URL"  # tests only: a loopback server standing in for GitHub
_SKIP_SUFFIX = ".num_batches_tracked"


def sagan_cache_dir() -> Path:
    return Path.home() / ".cache" / "sagan"


def hub_checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def search_path() -> list[Path]:
    """Every file looked at after the option/env, in order."""
    dirs = [hub_checkpoint_dir(), sagan_cache_dir()]
    return [d / name for d in dirs for name in NAMES]


def find_weights(explicit: Path | None, from_env: bool = False) -> Path | None:
    """The weights file to use, or None when none of the usual places has one.

    ``explicit`` is the option (or env var) value: it must exist, nothing else is tried.
    """
    if explicit is not None:
        flag = f"${ENV_WEIGHTS}" if from_env else "--inception-weights"
        explicit = Path(explicit).expanduser()
        if not explicit.is_file():
            what = "is a directory" if explicit.is_dir() else "no such file"
            raise SaganError(f"{flag} {explicit}: {what}; point it at {PYTORCH_FID_NAME} or {TORCH_FIDELITY_NAME}")
        return explicit
    for candidate in search_path():
        if candidate.is_file():
            return candidate
    return None


def missing_weights_error() -> SaganError:
    places = ", ".join(str(p) for p in search_path())
    return SaganError(
        f"the FID Inception weights were not found. Looked in: --inception-weights / ${ENV_WEIGHTS} (not set), "
        f"{places}. Fix: re-run with --download-weights (fetches {PYTORCH_FID_URL} into {hub_checkpoint_dir()}, "
        f"sha256 checked), or download {PYTORCH_FID_URL} (or {TORCH_FIDELITY_URL}) yourself and pass "
        f"--inception-weights FILE or set ${ENV_WEIGHTS}."
    )


def download_url() -> str:
    """The file to fetch: the pytorch-fid release, or a loopback test server from $SAGAN_INCEPTION_URL."""
    url = os.environ.get(ENV_URL)
    if not url:
        return PYTORCH_FID_URL
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SaganError(f"${ENV_URL} {url}: only a loopback address (127.0.0.1, localhost) is accepted; "
                         f"download the file yourself and pass --inception-weights FILE")
    return url


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def download_weights(say: Callable[[str], None], dest_dir: Path | None = None) -> Path:
    """Fetch the weights into the torch hub cache; a file whose sha256 does not start with 6726825d is deleted."""
    from sagan_cli.data.prepare.download import download_file

    url = download_url()
    dest = (dest_dir or hub_checkpoint_dir()) / PYTORCH_FID_NAME
    if dest.is_file():
        return dest
    staging = dest.with_name(dest.name + ".unverified")
    try:
        download_file(url, staging, say)
    except SaganError as exc:
        msg = str(exc)
        if msg.startswith("cannot download"):  # download_file's hint is about LSUN zips
            msg = msg.split("; fetch it another way")[0]
        raise SaganError(f"{msg}; download the weights another way and pass --inception-weights FILE") from None
    digest = sha256_of(staging)
    if not digest.startswith(SHA256_PREFIX):
        staging.unlink(missing_ok=True)
        raise SaganError(f"downloaded {url} but its sha256 is {digest[:16]}…, not {SHA256_PREFIX}…: "
                         "refused and deleted (a changed or corrupted file); nothing was saved")
    os.replace(staging, dest)
    say(f"Inception weights verified (sha256 {digest[:8]}…) → {dest}")
    return dest


def expected_keys() -> dict:
    """name → shape of every tensor the network needs (the torch-fidelity key set)."""
    import torch

    from sagan_cli.metrics.inception import FIDInceptionV3

    with torch.device("meta"):  # shapes only, no memory
        net = FIDInceptionV3()
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith(_SKIP_SUFFIX)}


def normalise_keys(state: dict) -> dict:
    """Map a state dict in either published layout onto the torch-fidelity key set.

    pytorch-fid's file is a torchvision ``Inception3`` state dict (BatchNorm counters
    ``*.num_batches_tracked`` included when saved by a recent PyTorch); a DataParallel copy has a
    ``module.`` prefix. The counters play no part in eval mode and are dropped.
    """
    out = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.endswith(_SKIP_SUFFIX):
            continue
        out[key] = value
    return out


def read_state_dict(path: Path) -> dict:
    """``torch.load(weights_only=True)``; every failure is a one-line SaganError."""
    import torch

    head = sniff.read_head(path, f"cannot read {path}")
    # torch.save writes zip archives, or (before PyTorch 1.6, as some published weights are) a pickle stream
    if not head.startswith((sniff.ZIP, sniff.PICKLE)):
        raise SaganError(f"{path} is not a PyTorch weights file: it is {sniff.describe(head)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise SaganError(f"{path}: refused to load, it holds pickled objects, not plain tensors "
                         f"({sniff.unpickler_reason(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise SaganError(f"{path} is not a readable PyTorch weights file (truncated or corrupt: {type(exc).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SaganError(f"{path} is not an Inception state dict (expected a dict of tensors)")
    return state


def load_inception(path: Path, device):
    """The FID Inception network with the weights from ``path``, in eval mode on ``device``."""
    from sagan_cli.metrics.inception import FIDInceptionV3

    state = normalise_keys(read_state_dict(Path(path)))
    want = expected_keys()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise SaganError(
            f"{path} is not the FID Inception-v3 (2015-12-05) weights: {len(missing)} missing and "
            f"{len(unexpected)} unexpected keys (e.g. {'missing' if missing else 'unexpected'} {example!r}); "
            f"use {PYTORCH_FID_NAME} or {TORCH_FIDELITY_NAME}"
        )
    wrong = [k for k in want if tuple(state[k].shape) != want[k]]
    if wrong:
        k = wrong[0]
        raise SaganError(f"{path}: {len(wrong)} tensors have the wrong shape (e.g. {k}: {tuple(state[k].shape)}, "
                         f"expected {want[k]}); not the FID Inception-v3 weights")
    net = FIDInceptionV3()
    net.load_state_dict(state, strict=False)  # the key sets were compared above; only the counters are left out
    return net.to(device).eval().requires_grad_(False)
