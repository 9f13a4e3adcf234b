"""Helpers for the evaluate tests: seeded random FID-Inception weights in both published key layouts.

The real weights cannot be downloaded here, so tests use random ones. The initialisation keeps
activations O(1) through the ~95 layers (He-normal convolutions, BatchNorm statistics and affine
parameters drawn per channel), so features and logits are informative numbers, and every tensor
differs, so a key mapped to the wrong layer would change the output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

LAYOUTS = ("torch-fidelity", "pytorch-fid")


def random_inception_state(seed: int = 0) -> dict:
    """A state dict for FIDInceptionV3 in torch-fidelity's layout (no ``num_batches_tracked``)."""
    from sagan_cli.metrics.inception import FIDInceptionV3

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in FIDInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        shape = value.shape
        if key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            t = torch.randn(shape, generator=gen) * (2.0 / fan_in) ** 0.5
        elif key.endswith("bn.weight"):
            t = 0.8 + 0.4 * torch.rand(shape, generator=gen)
        elif key.endswith("bn.bias"):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif key.endswith("running_mean"):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif key.endswith("running_var"):
            t = 0.8 + 0.4 * torch.rand(shape, generator=gen)
        elif key == "fc.weight":
            t = torch.randn(shape, generator=gen) * (4.0 / shape[1]) ** 0.5
        elif key == "fc.bias":
            t = torch.randn(shape, generator=gen)
        else:  # pragma: no cover - a new parameter kind would need an initialiser here
            raise AssertionError(key)
        state[key] = t.contiguous()
    return state


def torchvision_fid_inception():
    """torchvision's Inception3 shaped as pytorch-fid builds it (1008 classes, no aux head)."""
    import torchvision

    return torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)


def save_weights(state: dict, path: Path, layout: str) -> Path:
    """torch-fidelity: the plain dict, zip format. pytorch-fid: a torchvision Inception3 state dict
    (BatchNorm counters included), in the legacy (pre-1.6) serialisation format as in its 2019 release."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == "torch-fidelity":
        torch.save(state, path)
    elif layout == "pytorch-fid":
        net = torchvision_fid_inception()
        net.load_state_dict(state, strict=False)
        full = net.state_dict()
        assert set(full) - set(state) == {k for k in full if k.endswith("num_batches_tracked")}
        torch.save(full, path, _use_new_zipfile_serialization=False)
    else:
        raise ValueError(layout)
    return path


_STATES: dict[int, dict] = {}
_FILES: dict[str, Path] = {}


def cached_state(seed: int = 0) -> dict:
    if seed not in _STATES:
        _STATES[seed] = random_inception_state(seed)
    return _STATES[seed]


def weights_file(tmp_path_factory, layout: str = "torch-fidelity") -> Path:
    """The seed-0 random weights saved once per test session in ``layout``, under its published name."""
    from sagan_cli.metrics.weights import PYTORCH_FID_NAME, TORCH_FIDELITY_NAME

    if layout not in _FILES:
        name = TORCH_FIDELITY_NAME if layout == "torch-fidelity" else PYTORCH_FID_NAME
        _FILES[layout] = save_weights(cached_state(0), tmp_path_factory.getbasetemp() / "inception" / layout / name, layout)
    return _FILES[layout]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME and TORCH_HOME inside tmp_path, no SAGAN_INCEPTION_* variables: the user's caches never count."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for var in ("SAGAN_INCEPTION_WEIGHTS", "SAGAN_INCEPTION_URL", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "home").mkdir(exist_ok=True)
    return tmp_path / "home"




def tiny_run(base: Path) -> tuple[Path, Path]:
    """A 2-step tiny run trained under ``base`` through the CLI: (run directory, its 64-image 32px dataset)."""
    import os

    from conftest import TINY, make_images
    from sagan_cli.cli import main
    from sagan_cli.data.dataset import save_dataset

    data = base / "data" / "tiny-32"
    save_dataset(data, make_images(64, 32), source="test", category=None, split=None)
    cwd = os.getcwd()
    os.chdir(base)
    try:
        main(["train", *TINY, "--data", str(data), "--steps", "2", "--batch", "8"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        os.chdir(cwd)
    return base / "runs" / "00000-tiny-32", data


@pytest.fixture
def no_inception(monkeypatch):
    """Fail the test if the Inception weights are looked for or loaded (a metric computed from the images)."""
    from sagan_cli.metrics import weights as W

    def forbidden(*args, **kwargs):
        raise AssertionError("the Inception weights were looked for")

    for name in ("find_weights", "load_inception", "download_weights"):
        monkeypatch.setattr(W, name, forbidden)
