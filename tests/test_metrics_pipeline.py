"""The evaluate pipeline around the network, with a cheap stand-in for the Inception: statistics cache
(hit, miss, features added later, damaged file), real-subset choice, image folders, extraction order."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from metrics_helpers import home  # noqa: F401
from sagan_cli.util.errors import SaganError
from sagan_cli.metrics import stats_cache
from sagan_cli.metrics.evaluate import Request, open_real, real_statistics
from sagan_cli.metrics.features import extract
from sagan_cli.metrics.fid import statistics
from sagan_cli.metrics.sources import ArraySource, ImageFilesSource, open_samples


class StubNet:
    """Maps each image to 2048 of its pixel values (/255): deterministic, instant, image-specific."""

    def __init__(self):
        self.images_seen = 0

    def __call__(self, images):
        self.images_seen += len(images)
        x = images.float().flatten(1) / 255
        return x.repeat(1, 2048 // x.shape[1] + 1)[:, :2048], x[:, :1008]


def run_real(net, req, need_features=False):
    messages, warnings = [], []
    real = open_real(req, None, warnings.append)
    out = real_statistics(net, real, need_features, "ab" * 32, req, "cpu", Console(file=io.StringIO()),
                          messages.append, warnings.append)
    return out, messages, warnings


def test_statistics_cache_hit_miss_features_and_damage(home, tiny_dataset):
    net = StubNet()
    req = Request(data=tiny_dataset, num_real=20, batch=7)
    (mu, sigma, feats, path, hit), msgs, _ = run_real(net, req)
    assert not hit and feats is None and net.images_seen == 20 and "computed" in msgs[0]
    assert path.startswith(str(home / ".cache" / "sagan" / "stats"))
    # the numbers are those of the chosen 20 images
    real = open_real(req, None, print)
    expected = statistics(extract(net, ArraySource(real.images, real.indices), "cpu", 64).pool3)
    np.testing.assert_allclose(mu, expected[0])
    np.testing.assert_allclose(sigma, expected[1])

    net = StubNet()
    (mu2, _, _, path2, hit), msgs, _ = run_real(net, req)
    assert hit and path2 == path and net.images_seen == 0 and "cache hit" in msgs[0]
    assert np.array_equal(mu, mu2)

    # KID/PR need the features: the cache is recomputed once with them, then hits again
    (_, _, feats, _, hit), _, _ = run_real(net, req, need_features=True)
    assert not hit and feats.shape == (20, 2048) and net.images_seen == 20
    (_, _, feats2, _, hit), _, _ = run_real(net, req, need_features=True)
    assert hit and np.array_equal(feats, feats2) and net.images_seen == 20

    # another --num-real is another cache entry
    (_, _, _, other, hit), _, _ = run_real(net, Request(data=tiny_dataset, num_real=30))
    assert not hit and other != path

    # a damaged cache file: a warning, then recomputed and rewritten
    with open(path, "wb") as fh:
        fh.write(b"PK\x03\x04 not a zip")
    (mu3, _, _, _, hit), _, warnings = run_real(net, req)
    assert not hit and np.array_equal(mu3, mu) and "damaged" in warnings[0]
    assert stats_cache.load_stats(path).meta["num_real"] == 20


def test_num_real_picks_a_fixed_sorted_subset_and_all_by_default(tiny_dataset):
    a = open_real(Request(data=tiny_dataset, num_real=10), None, print)
    b = open_real(Request(data=tiny_dataset, num_real=10), None, print)
    assert np.array_equal(a.indices, b.indices) and len(a.indices) == 10
    assert np.all(np.diff(a.indices) > 0) and a.indices.max() > 10  # spread over the set, in file order
    everything = open_real(Request(data=tiny_dataset), None, print)
    assert everything.indices is None and everything.num_real == everything.count == 64
    assert a.fingerprint == everything.fingerprint and a.fingerprint.startswith("sha256:")


def test_image_folder_keeps_order_batches_by_size_and_skips_bad_files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    sizes = [8, 8, 8, 16, 8]
    for i, s in enumerate(sizes):
        Image.fromarray(np.full((s, s, 3), i * 40, np.uint8)).save(folder / f"{i:02d}.png")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    source, desc = open_samples(folder, None)
    assert isinstance(source, ImageFilesSource) and len(source) == 5 and "5 of 5 files" in desc
    batches = list(source.batches(2))
    assert [tuple(b.shape) for b in batches] == [(2, 3, 8, 8), (1, 3, 8, 8), (1, 3, 16, 16), (1, 3, 8, 8)]
    assert [int(b[i, 0, 0, 0]) for b in batches for i in range(len(b))] == [0, 40, 80, 120, 160]
    feats = extract(StubNet(), source, "cpu", 2).pool3
    assert feats.shape == (5, 2048) and np.allclose(feats[:, 0], np.arange(5) * 40 / 255)

    first3, _ = open_samples(folder, 3)
    assert len(first3) == 3
    with pytest.raises(SaganError, match="--num 9: .* holds only 5 images;"):
        open_samples(folder, 9)
    # a file that is no image is skipped, as `prepare folder` skips it, with a warning (test_metrics_samples_folder.py)
    (folder / "broken.png").write_bytes(b"not a png")
    warnings = []
    source, desc = open_samples(folder, None, warnings.append)
    assert len(source) == 5 and "5 of 6 files" in desc and "broken.png" in warnings[0]


def test_prepared_dataset_as_samples(tiny_dataset):
    source, desc = open_samples(tiny_dataset, 5)
    assert isinstance(source, ArraySource) and len(source) == 5 and "prepared dataset" in desc
    [batch] = list(source.batches(8))
    assert batch.dtype == torch.uint8 and batch.shape == (5, 3, 32, 32)


def test_generated_images_are_quantised_to_uint8_by_rounding_then_clipped():
    """The protocol's first step (torch-fidelity/StyleGAN): G's [-1, 1] output → round((x+1)·127.5), clipped to
    [0, 255]. Truncation would shift every pixel down by half a level on average and bias FID."""
    from sagan_cli.util.images import to_uint8

    levels = torch.tensor([0.4, 0.6, 10.49, 10.51, 127.7, 254.6, 300.0, -5.0], dtype=torch.float64)
    x = (levels / 127.5 - 1.0).float().view(1, 1, 1, -1).expand(1, 3, 1, -1)
    out = to_uint8(x)
    assert out.dtype == np.uint8 and out.shape == (1, 1, 8, 3)
    assert out[0, 0, :, 0].tolist() == [0, 1, 10, 11, 128, 255, 255, 0]
    assert (out[..., 0] == out[..., 2]).all()
