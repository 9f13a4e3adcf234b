"""The FID Inception: TF1 resize, both weight layouts, strict key check, weights lookup and download."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from payloads import CodeRunner
from metrics_helpers import cached_state, home, save_weights, torchvision_fid_inception, weights_file  # noqa: F401
from prepare_helpers import FileServer
from sagan_cli.util.errors import SaganError
from sagan_cli.metrics import weights as W
from sagan_cli.metrics.inception import FIDInceptionV3
from sagan_cli.metrics.resize import resize_bilinear_tf1

torch.set_num_threads(min(2, torch.get_num_threads()))


# --------------------------------------------------------------------------- TF1 bilinear resize
def test_tf1_resize_upsampling_by_hand():
    """2×2 → 4×4: source = dest·in/out = 0, .5, 1, 1.5; the upper neighbour is clamped to the last pixel.

    row y=0: 0, 5, 10, 10; y=.5: 10, 15, 20, 20; y=1 and y=1.5 (clamped): 20, 25, 30, 30.
    """
    x = torch.tensor([[0.0, 10.0], [20.0, 30.0]]).view(1, 1, 2, 2)
    expected = torch.tensor([[0, 5, 10, 10], [10, 15, 20, 20], [20, 25, 30, 30], [20, 25, 30, 30]], dtype=torch.float32)
    assert torch.equal(resize_bilinear_tf1(x, 4)[0, 0], expected)
    # PyTorch's half-pixel bilinear is a different resampler: it would not reproduce published numbers
    assert not torch.allclose(F.interpolate(x, size=4, mode="bilinear", align_corners=False)[0, 0], expected)


def test_tf1_resize_downsampling_and_rectangles_by_hand():
    """4 → 3 columns: source = 0, 4/3, 8/3 → 0, 1⅓, 2⅔ on a ramp 0..3; rows 2 → 2 unchanged."""
    x = torch.tensor([[0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0]]).view(1, 1, 2, 4).repeat(2, 3, 1, 1)
    out = resize_bilinear_tf1(x, (2, 3))
    assert out.shape == (2, 3, 2, 3)
    torch.testing.assert_close(out[1, 2], torch.tensor([[0, 4 / 3, 8 / 3], [10, 10 + 4 / 3, 10 + 8 / 3]]))
    assert torch.equal(resize_bilinear_tf1(x, (2, 4)), x)  # same size: identity


def test_preprocess_is_resize_then_minus_128_over_128():
    img = torch.tensor([0, 128, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 2, 2).contiguous()
    out = FIDInceptionV3.preprocess(img)
    assert out.shape == (1, 3, 299, 299) and out.dtype == torch.float32
    assert out[0, :, 0, 0].tolist() == [-1.0, 0.0, 127 / 128]
    with pytest.raises(ValueError):
        FIDInceptionV3.preprocess(img.float())


# --------------------------------------------------------------------------- weight files
@pytest.mark.parametrize("layout", ["torch-fidelity", "pytorch-fid"])
def test_both_published_layouts_load_the_same_weights(tmp_path_factory, layout):
    """torch-fidelity's plain dict and pytorch-fid's torchvision-Inception3 dict (with BatchNorm counters,
    legacy serialisation) both load, strictly, into the same network."""
    net = W.load_inception(weights_file(tmp_path_factory, layout), "cpu")
    state = cached_state(0)
    loaded = net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_our_module_names_are_torchvisions():
    """pytorch-fid builds its network from torchvision's Inception3: same names and shapes as ours."""
    theirs = {k: tuple(v.shape) for k, v in torchvision_fid_inception().state_dict().items()
              if not k.endswith("num_batches_tracked")}
    assert theirs == W.expected_keys()
    assert len(theirs) == 472


def test_a_wrong_network_is_refused_with_key_counts(tmp_path):
    import torchvision

    path = tmp_path / "imagenet-inception.pth"
    torch.save(torchvision.models.inception_v3(weights=None, init_weights=False).state_dict(), path)  # aux head
    with pytest.raises(SaganError, match=r"0 missing and \d+ unexpected keys") as exc:
        W.load_inception(path, "cpu")
    assert "AuxLogits" in str(exc.value) and "\n" not in str(exc.value)

    partial = {k: v for k, v in cached_state(0).items() if not k.startswith("Mixed_7c")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(SaganError, match=r"(\d+) missing and 0 unexpected keys"):
        W.load_inception(tmp_path / "partial.pth", "cpu")

    wrong_shape = dict(cached_state(0))
    wrong_shape["fc.weight"] = torch.zeros(1000, 2048)
    torch.save(wrong_shape, tmp_path / "shape.pth")
    with pytest.raises(SaganError, match="wrong shape"):
        W.load_inception(tmp_path / "shape.pth", "cpu")


def test_pickle_payloads_and_damaged_files_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"fc.weight": CodeRunner(marker)}, tmp_path / "evil.pth")
    with pytest.raises(SaganError, match="refused to load"):
        W.load_inception(tmp_path / "evil.pth", "cpu")
    assert not marker.exists()

    (tmp_path / "cut.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SaganError, match="not a readable"):
        W.load_inception(tmp_path / "cut.pth", "cpu")
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(SaganError, match="not an Inception state dict"):
        W.load_inception(tmp_path / "list.pth", "cpu")


# --------------------------------------------------------------------------- lookup order
def test_lookup_order(home, tmp_path):
    hub, cache = W.hub_checkpoint_dir(), W.sagan_cache_dir()
    assert str(hub).startswith(str(tmp_path)) and cache == home / ".cache" / "sagan"
    assert W.find_weights(None) is None
    for d in (hub, cache):
        d.mkdir(parents=True, exist_ok=True)

    (cache / W.TORCH_FIDELITY_NAME).write_bytes(b"x")
    assert W.find_weights(None) == cache / W.TORCH_FIDELITY_NAME
    (cache / W.PYTORCH_FID_NAME).write_bytes(b"x")
    assert W.find_weights(None) == cache / W.PYTORCH_FID_NAME  # pytorch-fid's name first within a place
    (hub / W.TORCH_FIDELITY_NAME).write_bytes(b"x")
    assert W.find_weights(None) == hub / W.TORCH_FIDELITY_NAME  # the hub cache before ~/.cache/sagan
    (hub / W.PYTORCH_FID_NAME).write_bytes(b"x")
    assert W.find_weights(None) == hub / W.PYTORCH_FID_NAME
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"x")
    assert W.find_weights(mine) == mine  # the option (or env var) beats everything
    with pytest.raises(SaganError, match=r"--inception-weights .*no such file"):
        W.find_weights(tmp_path / "missing.pth")
    with pytest.raises(SaganError, match=r"\$SAGAN_INCEPTION_WEIGHTS .*is a directory"):
        W.find_weights(tmp_path, from_env=True)


def test_missing_weights_message_lists_every_place_the_urls_and_the_fix(home):
    msg = str(W.missing_weights_error())
    assert "\n" not in msg
    for path in W.search_path():
        assert str(path) in msg
    for needle in (W.PYTORCH_FID_URL, W.TORCH_FIDELITY_URL, "--download-weights", "--inception-weights",
                   "SAGAN_INCEPTION_WEIGHTS"):
        assert needle in msg


# --------------------------------------------------------------------------- download
PAYLOAD = b"stand-in for the 95 MB weights file " * 4096


def test_download_verifies_the_sha256_prefix(home, monkeypatch):
    hub = W.hub_checkpoint_dir()
    said = []
    with FileServer(PAYLOAD, W.PYTORCH_FID_NAME) as server:
        monkeypatch.setenv(W.ENV_URL, f"{server.base}/{W.PYTORCH_FID_NAME}")
        # the real prefix 6726825d: this payload does not have it → refused, nothing left behind
        with pytest.raises(SaganError, match="sha256 .* not 6726825d.*refused and deleted"):
            W.download_weights(said.append)
        assert not hub.exists() or list(hub.iterdir()) == []
        assert W.find_weights(None) is None
        # a file with the expected prefix is kept under the pytorch-fid name in the hub cache
        monkeypatch.setattr(W, "SHA256_PREFIX", hashlib.sha256(PAYLOAD).hexdigest()[:8])
        path = W.download_weights(said.append)
    assert path == hub / W.PYTORCH_FID_NAME and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in hub.iterdir()) == [W.PYTORCH_FID_NAME]
    assert W.find_weights(None) == path
    assert any("verified" in s for s in said)


def test_download_url_override_is_loopback_only(monkeypatch):
    monkeypatch.delenv(W.ENV_URL, raising=False)
    assert W.download_url() == W.PYTORCH_FID_URL
    monkeypatch.setenv(W.ENV_URL, "http://localhost:8000/x.pth")
    assert W.download_url() == "http://localhost:8000/x.pth"
    monkeypatch.setenv(W.ENV_URL, "https://example.com/x.pth")
    with pytest.raises(SaganError, match="loopback"):
        W.download_url()


def test_unreachable_download_says_how_to_pass_a_file(home, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(W.ENV_URL, f"http://127.0.0.1:{port}/{W.PYTORCH_FID_NAME}")
    with pytest.raises(SaganError) as exc:
        W.download_weights(lambda s: None)
    msg = str(exc.value)
    assert msg.startswith("cannot download") and "--inception-weights FILE" in msg and "--zip" not in msg


def test_weights_sha256_of_a_file(tmp_path):
    (tmp_path / "f").write_bytes(PAYLOAD)
    assert W.sha256_of(tmp_path / "f") == hashlib.sha256(PAYLOAD).hexdigest()


def test_features_are_finite_and_differ_between_images(tmp_path_factory):
    """Random weights still give informative features (the parity and CLI tests rely on this)."""
    net = W.load_inception(weights_file(tmp_path_factory), "cpu")
    from conftest import make_images

    imgs = torch.from_numpy(make_images(2, 32))
    with torch.no_grad():
        feats, logits = net(imgs)
    assert feats.shape == (2, 2048) and logits.shape == (2, 1008)
    assert np.isfinite(feats.numpy()).all() and (feats >= 0).all()  # a mean of ReLUs
    assert (feats[0] - feats[1]).abs().max() > 1e-3
    # logits are pool3 times the fc weight, without the bias
    torch.testing.assert_close(logits, feats @ net.fc.weight.T, rtol=1e-5, atol=1e-5)
