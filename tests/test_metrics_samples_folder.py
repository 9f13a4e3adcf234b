"""`evaluate --samples DIR` reads an image folder by `prepare folder`'s rules (data/imagefolder.py): the same
suffixes, the same recursion and order, the same files skipped for the same reasons — reported in one
warning — and only the readable images count against --num."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import metrics_helpers
from sagan_cli.data.imagefolder import scan, walk_images
from sagan_cli.metrics.sources import ImageFilesSource, open_samples
from sagan_cli.util.errors import SaganError

home = metrics_helpers.home  # a fixture: HOME (the statistics cache) inside tmp_path


def _png(path, side=32, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side, 3), value, np.uint8)).save(path)


def _tree(root):
    """Good images at several depths and in several formats, a file that is not an image, a truncated PNG,
    a file with another suffix and a directory symlink back to the root (not followed)."""
    _png(root / "b.png", value=10)
    _png(root / "UPPER.PNG", value=20)
    (root / "a").mkdir()
    Image.fromarray(np.full((32, 40, 3), 30, np.uint8)).save(root / "a" / "x.jpg")
    Image.fromarray(np.full((36, 32, 3), 40, np.uint8)).save(root / "a" / "deeper.webp")
    _png(root / "a" / "deeper" / "y.png", value=50)
    (root / "a" / "broken.png").write_bytes(b"definitely not an image")
    _png(root / "c" / "whole.png", value=60)
    raw = (root / "c" / "whole.png").read_bytes()
    (root / "c" / "trunc.png").write_bytes(raw[: len(raw) // 2])
    (root / "c" / "notes.txt").write_text("not an image suffix")
    (root / "loop").symlink_to(root, target_is_directory=True)
    return root


def test_samples_folder_reads_exactly_what_prepare_folder_reads(cli, tmp_path):
    root = _tree(tmp_path / "fakes")
    r = cli("prepare", "folder", root, "--imsize", 32, "--min-size", 0, "--workers", 1, "--out", "ds")
    assert r.code == 0, r.stderr
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    warnings = []
    source, desc = open_samples(root, None, warnings.append)
    assert isinstance(source, ImageFilesSource) and len(source) == meta["count"] == 6
    skipped = [{"key": key, "reason": reason} for key, reason in scan(root).skipped]
    assert skipped == meta["skipped"] and [s["key"] for s in skipped] == ["a/broken.png", "c/trunc.png"]
    kept = [name for name in walk_images(root) if name not in {"a/broken.png", "c/trunc.png"}]
    assert source.files == [root / name for name in kept]
    # recursive, in path-component order (byte order of names: upper case first), the symlink loop not followed
    assert kept == ["UPPER.PNG", "a/deeper/y.png", "a/deeper.webp", "a/x.jpg", "b.png", "c/whole.png"]
    assert "6 of 8 files" in desc
    [warning] = warnings
    assert warning == (f"--samples {root}: 2 image files skipped, not readable as an image "
                       f"(first: a/broken.png: {meta['skipped'][0]['reason']})")
    # the pixels are the files' own, as RGB, batched by size
    batches = list(source.batches(8))
    assert sum(len(b) for b in batches) == 6 and all(b.shape[1] == 3 for b in batches)


def test_num_counts_only_the_readable_images(tmp_path):
    root = tmp_path / "fakes"
    for name in ("0-bad.png", "1-bad.jpg"):
        root.mkdir(exist_ok=True)
        (root / name).write_bytes(b"junk")
    for i in range(3):
        _png(root / f"{i + 2}.png", value=i)
    warnings = []
    source, desc = open_samples(root, 3, warnings.append)
    assert len(source) == 3 and "3 of 5 files" in desc and "2 image files skipped" in warnings[0]
    with pytest.raises(SaganError, match=r"^--num 4: .*fakes holds only 3 readable images \(2 skipped, first: 0-bad.png: "
                                         r"UnidentifiedImageError: .*\); lower --num or leave it out$"):
        open_samples(root, 4, warnings.append)
    for i in range(3):
        (root / f"{i + 2}.png").write_bytes(b"junk")
    with pytest.raises(SaganError, match=r"--samples .*fakes: none of its 5 image files can be read as an image "
                                         r"\(first: 0-bad.png"):
        open_samples(root, None)


def test_a_file_that_breaks_after_the_scan_is_one_line(tmp_path):
    root = tmp_path / "fakes"
    for i in range(2):
        _png(root / f"{i}.png")
    source, _ = open_samples(root, None)
    (root / "1.png").write_bytes(b"junk")
    with pytest.raises(SaganError, match=r"cannot decode .*1.png as an image any more \(UnidentifiedImageError"):
        list(source.batches(4))


def test_evaluate_samples_warns_on_stderr_and_scores_the_readable_images(cli, tmp_path, tmp_path_factory, tiny_dataset,
                                                                        home):
    root = tmp_path / "fakes"
    for i, rel in enumerate(["0.png", "sub/1.png", "sub/deeper/2.png"]):
        _png(root / rel, value=40 * i)
    (root / "sub" / "broken.png").write_bytes(b"not an image")
    r = cli("evaluate", "--samples", root, "--data", tiny_dataset, "--num-real", 4, "--device", "cpu", "--json",
            "--inception-weights", metrics_helpers.weights_file(tmp_path_factory))
    assert r.code == 0, r.stderr
    res = json.loads(r.stdout)  # stdout holds the JSON only
    assert res["num_gen"] == 3 and "3 of 4 files" in res["generated"] and np.isfinite(res["fid"])
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: --samples {root}: 1 image file skipped, not readable as an image "
                        "(first: sub/broken.png: UnidentifiedImageError: cannot identify image file)"]
