"""Labels in the prepared-dataset format (labels.npy, classes in meta.json), through the loader, and
`sagan prepare synthetic --classes K`."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from conftest import assert_one_line_error, make_images
from labels_helpers import interrupt_at_chunk
from sagan_cli.data.dataset import LABELS, fingerprint_array, open_dataset, save_dataset
from sagan_cli.data.loader import EpochSampler, Prefetcher
from sagan_cli.data.prepare import pipeline
from sagan_cli.data.prepare.synthetic import SHAPES, class_names, render
from sagan_cli.util.errors import SaganError


def _labelled(path, n=24, k=3):
    labels = np.arange(n) % k
    save_dataset(path, make_images(n, 32), labels=labels, classes=[f"c{i}" for i in range(k)], source="test")
    return labels


def test_a_labelled_dataset_opens_with_its_labels_and_classes(tmp_path):
    labels = _labelled(tmp_path / "ds")
    ds = open_dataset(tmp_path / "ds")
    assert ds.classes == ["c0", "c1", "c2"] and ds.num_classes == 3
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.labels.dtype == np.int64
    assert ds.meta["class_counts"] == [8, 8, 8] and ds.meta["format_version"] == 2
    # the fingerprint covers the labels: the same images, other labels, another fingerprint
    save_dataset(tmp_path / "other", make_images(24, 32), labels=labels[::-1].copy(), classes=["c0", "c1", "c2"])
    assert open_dataset(tmp_path / "other").fingerprint != ds.fingerprint
    save_dataset(tmp_path / "plain", make_images(24, 32))
    plain = open_dataset(tmp_path / "plain")
    assert plain.labels is None and plain.classes is None and plain.num_classes == 0
    assert plain.fingerprint == fingerprint_array(make_images(24, 32)) != ds.fingerprint


def test_a_format_1_dataset_is_still_read_unlabelled(tmp_path):
    save_dataset(tmp_path / "old", make_images(8, 32))
    meta = json.loads((tmp_path / "old" / "meta.json").read_text())
    (tmp_path / "old" / "meta.json").write_text(json.dumps(meta | {"format_version": 1}))
    ds = open_dataset(tmp_path / "old")
    assert ds.labels is None and ds.fingerprint == fingerprint_array(make_images(8, 32))


@pytest.mark.parametrize("damage, fragment", [
    ("short", "holds 23 labels but images.npy 24 images"),
    ("range", "holds class id 3, outside 0..2"),
    ("negative", "holds class id -1, outside 0..2"),
    ("missing", "has no labels.npy"),
    ("dtype", "expected int64 N"),
    ("stray", "names no classes"),
    ("pickled", "pickled Python objects, not int64 labels"),
    ("newer", "prepared by a newer sagan"),
])
def test_inconsistent_labels_are_refused_in_one_line(tmp_path, damage, fragment):
    labels = _labelled(tmp_path / "ds")
    path = tmp_path / "ds" / LABELS
    meta_path = tmp_path / "ds" / "meta.json"
    meta = json.loads(meta_path.read_text())
    if damage == "short":
        np.save(path, labels[:-1])
    elif damage == "range":
        np.save(path, np.where(labels == 2, 3, labels))
    elif damage == "negative":
        np.save(path, labels - 1)
    elif damage == "missing":
        path.unlink()
    elif damage == "dtype":
        np.save(path, labels.astype(np.float32))
    elif damage == "stray":
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "classes"}))
    elif damage == "pickled":
        np.save(path, np.array([{"x": 1}] * 24, dtype=object), allow_pickle=True)
    elif damage == "newer":
        meta_path.write_text(json.dumps(meta | {"format_version": 99}))
    with pytest.raises(SaganError, match=fragment.replace("(", r"\(").replace(".", r"\.")) as err:
        open_dataset(tmp_path / "ds")
    assert "\n" not in str(err.value)


def test_train_refuses_a_labelled_dataset_whose_labels_do_not_fit(cli, tmp_path):
    labels = _labelled(tmp_path / "ds", n=16)
    np.save(tmp_path / "ds" / LABELS, labels[:10])
    r = cli("train", "--data", "ds", "--imsize", 32, "--steps", 1, "--batch", 8, "--device", "cpu")
    assert_one_line_error(r, "holds 10 labels but images.npy 16 images")


def _drain(images, labels, sampler, n):
    pf = Prefetcher(images, sampler, labels=labels)
    try:
        return [pf.next() for _ in range(n)]
    finally:
        pf.close()


def test_the_loader_yields_each_images_own_label_and_resumes_and_shards_them():
    n = 40
    images = np.zeros((n, 3, 4, 4), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # each image carries its index
    labels = (np.arange(n) * 7) % 5
    got = _drain(images, labels, EpochSampler(n, 8, seed=2), 12)  # 2.4 epochs
    for (x, y), _state in got:
        assert y.dtype.__str__() == "torch.int64" and len(y) == len(x) == 8
        np.testing.assert_array_equal(y.numpy(), labels[x[:, 0, 0, 0].numpy()])
    # resumed from the state after batch 5: the same batches, the same labels
    state = got[4][1]
    again = _drain(images, labels, EpochSampler(n, 8, **state), 7)
    for ((x1, y1), _), ((x2, y2), _) in zip(got[5:], again):
        assert x1.equal(x2) and y1.equal(y2)
    # two ranks' shards together are the global batch, labels included
    shards = [_drain(images, labels, EpochSampler(n, 8, seed=2, rank=r, world=2), 3) for r in range(2)]
    for b in range(3):
        ys = np.concatenate([shards[r][b][0][1].numpy() for r in range(2)])
        xs = np.concatenate([shards[r][b][0][0][:, 0, 0, 0].numpy() for r in range(2)])
        assert sorted(xs.tolist()) == sorted(got[b][0][0][:, 0, 0, 0].tolist())
        np.testing.assert_array_equal(ys, labels[xs])
    # unlabelled: the images as before, labels None
    (x, y), _ = _drain(images, None, EpochSampler(n, 8, seed=2), 1)[0]
    assert y is None and x.equal(got[0][0][0])


def test_synthetic_without_classes_is_unchanged_and_with_classes_is_labelled(cli, tmp_path):
    assert cli("prepare", "synthetic", "--imsize", 32, "--count", 90, "--workers", 1, "--out", "plain").code == 0
    plain = open_dataset(tmp_path / "plain")
    np.testing.assert_array_equal(plain.images, np.stack([render(0, i, 32) for i in range(90)]))
    # the bytes of the scenes as they were before --classes existed (sha256 taken from that version)
    assert hashlib.sha256(np.ascontiguousarray(plain.images).tobytes()).hexdigest() == \
        "ef4abf7b3e30575c75c41492a3fab283f74691fa772dad8f21c7097f168a3646"
    assert plain.labels is None and not (tmp_path / "plain" / LABELS).exists() and "classes" not in plain.meta
    r = cli("prepare", "synthetic", "--imsize", 32, "--count", 90, "--classes", 3, "--workers", 2)
    assert r.code == 0, r.stderr
    assert "3 classes (images per class in meta.json): disc-red 30, square-green 30, triangle-blue 30" in r.stdout
    ds = open_dataset(tmp_path / "data" / "synthetic-3c-32")
    np.testing.assert_array_equal(ds.labels, np.arange(90) % 3)
    assert ds.classes == class_names(3) == ["disc-red", "square-green", "triangle-blue"]
    assert ds.meta["class_counts"] == [30, 30, 30] and ds.meta["request"]["classes"] == 3
    np.testing.assert_array_equal(ds.images, ds.images[..., ::-1])  # still mirrored


def _shapes(img: np.ndarray) -> np.ndarray:
    """Where the shapes are: the background's chroma (a colour minus its grey level) is the same along a
    row (the glow adds grey), so pixels whose chroma differs from their row's median are shape pixels."""
    rgb = img.astype(float) / 255
    chroma = rgb - rgb.mean(0, keepdims=True)
    return np.abs(chroma - np.median(chroma, axis=2, keepdims=True)).max(0) > 0.12


def _hue(img: np.ndarray, mask: np.ndarray) -> float:
    r, g, b = (img[i].astype(float)[mask] for i in range(3))
    angle = np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)  # hue on the colour circle
    return float(np.angle(np.exp(1j * angle).mean()) / (2 * np.pi)) % 1.0


def test_each_synthetic_class_has_its_own_shape_and_colour():
    """A per-class check: class-mean images differ clearly, each class's shapes have its colour family,
    and the shape kind shows in how much of its enclosing circle a lone shape fills."""
    k = 12
    ims = {c: np.stack([render(0, i, 64, c) for i in range(c, 40 * k, k)]) for c in range(k)}
    means = np.stack([ims[c].astype(float).mean(0) for c in range(k)])
    gaps = [np.abs(means[a] - means[b]).mean() for a in range(k) for b in range(a + 1, k)]
    assert min(gaps) > 3.0, min(gaps)  # mean absolute difference of class-mean images, in 0..255 levels
    centres = {"red": 0.0, "green": 0.33, "blue": 0.62, "yellow": 0.14}
    for c in range(k):
        hues = np.array([_hue(im, m) for im in ims[c] if (m := _shapes(im)).sum() > 10])
        off = np.abs((hues - centres[class_names(k)[c].split("-")[1]] + 0.5) % 1.0 - 0.5)
        assert len(hues) > 30 and np.median(off) < 0.05, (c, np.median(off))
    fills = {kind: [] for kind in SHAPES}
    for c in range(3):
        for i in range(c, 600, 3):
            rng = np.random.default_rng([0, i])  # replay render's first draws: keep the one-shape scenes
            rng.uniform(size=(2, 3)), rng.uniform()
            if int(rng.integers(1, 4)) != 1:
                continue
            rows, cols = np.nonzero(_shapes(render(0, i, 64, c))[:, :32])
            if len(rows) >= 20:  # area over the circle round the centroid that holds it: any rotation
                radius = np.sqrt((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2).max() + 0.5
                fills[SHAPES[c]].append(len(rows) / (np.pi * radius ** 2))
    disc, square, triangle = (float(np.median(fills[kind])) for kind in SHAPES)
    assert triangle + 0.1 < square < disc - 0.1, (disc, square, triangle)  # ideal: 0.41, 2/pi, 1


def test_an_interrupted_labelled_prepare_resumes_to_the_same_labels(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "COMMIT_EVERY_S", 0.0)
    args = ("prepare", "synthetic", "--imsize", 32, "--count", 700, "--classes", 5, "--workers", 1)
    assert cli(*args, "--out", "whole").code == 0
    real = interrupt_at_chunk(monkeypatch, 3)
    r = cli(*args, "--out", "ds")
    assert_one_line_error(r, "interrupted after 256 of 700")
    assert (tmp_path / "ds" / LABELS).exists()
    monkeypatch.setattr(pipeline, "process_chunk", real)
    r = cli(*args, "--out", "ds")
    assert r.code == 0 and "resumed at 256" in r.stdout, r.stdout + r.stderr
    a, b = open_dataset(tmp_path / "whole"), open_dataset(tmp_path / "ds")
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.fingerprint == b.fingerprint
    assert (tmp_path / "whole" / LABELS).read_bytes() == (tmp_path / "ds" / LABELS).read_bytes()
