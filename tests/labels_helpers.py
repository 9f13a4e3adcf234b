"""Tiny labelled sources for the label tests: CIFAR-10 archives (binary and pickle-style) and class folders."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_records(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` records of the binary format: (labels, uint8 n×3×32×32 images)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 10, n).astype(np.uint8), rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def make_cifar_binary(path: Path, per_batch: int = 3, test: int = 4, meta: str | None = None) -> dict:
    """A cifar-10-binary.tar.gz look-alike: data_batch_1..5.bin of ``per_batch`` records, test_batch.bin of
    ``test``. Returns {"train": (labels, images), "test": (labels, images)} in file order."""
    parts = {"train": [cifar_records(per_batch, seed) for seed in range(1, 6)], "test": [cifar_records(test, 9)]}
    with tarfile.open(path, "w:gz") as tf:
        _add(tf, "cifar-10-batches-bin/readme.html", b"<html></html>")
        _add(tf, "cifar-10-batches-bin/batches.meta.txt", (meta or "\n".join(CIFAR_CLASSES) + "\n\n").encode())
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        for name, (labels, images) in zip(names, parts["train"] + parts["test"]):
            records = np.concatenate([labels[:, None], images.reshape(len(labels), -1)], axis=1)
            _add(tf, f"cifar-10-batches-bin/{name}", records.astype(np.uint8).tobytes())
    return {split: (np.concatenate([p[0] for p in ps]).astype(np.int64), np.concatenate([p[1] for p in ps]))
            for split, ps in parts.items()}


def make_cifar_pickle(path: Path) -> Path:
    """The layout of cifar-10-python.tar.gz (the members' bytes are no real pickles: they are never read)."""
    with tarfile.open(path, "w:gz") as tf:
        for name in ["batches.meta", "data_batch_1", "test_batch", "readme.html"]:
            _add(tf, f"cifar-10-batches-py/{name}", b"not read")
    return path


def make_class_folders(root: Path, per_class: dict[str, int], top: int = 0, size: int = 40) -> Path:
    """``root/<class>/<i>.png`` (one colour per class, so a class is recognisable), plus ``top`` top-level images."""
    colours = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 220, 40)]
    for c, (name, n) in enumerate(per_class.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (size, size + i), colours[c % len(colours)]).save(root / name / f"{i:03d}.png")
    for i in range(top):
        Image.new("RGB", (size, size), (0, 0, 0)).save(root / f"top{i}.png")
    return root


def interrupt_at_chunk(monkeypatch, n: int = 3):
    """Make `prepare`'s pipeline raise KeyboardInterrupt (a Ctrl-C) when it starts its ``n``-th chunk;
    returns the real chunk function, to put back for the resumed run."""
    from sagan_cli.data.prepare import pipeline

    real = pipeline.process_chunk
    calls = {"n": 0}

    def stop(*a, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(pipeline, "process_chunk", stop)
    return real
