"""The bad-input matrix's machinery (tests/test_cli_bad_input.py holds the cases): the workspace each case runs in,
the files a case's setup adds, and the docs/errors.md row each case must have."""

from __future__ import annotations

import importlib.util
import json
import pickle
import re
import shlex
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, make_images
from payloads import FileMaker
from faults_helpers import DATA, RUN, TINY, base_workspace
from prepare_helpers import make_lsun_lmdb, make_zip
from labels_helpers import make_cifar_pickle, make_class_folders
from sagan_cli.data.dataset import save_dataset

DOC = REPO / "docs" / "errors.md"
BASE = {
    "train": [*TINY, "--data", DATA, "--steps", "2", "--batch", "8"],
    "sample": ["--device", "cpu"],
    "attn-map": ["--device", "cpu"],
    "evaluate": ["--device", "cpu", "--inception-weights", "w.pth"],
}


# -------------------------------------------------------------------- workspace and setups
def _ckpt(ws):
    return torch.load(ws / "ckpt.pt", weights_only=True)


def bad_data(ws, case):
    d = ws / "bad"
    save_dataset(d, make_images(16, 32))
    meta = json.loads((d / "meta.json").read_text())
    if case == "unfinished":  # what a killed `prepare` leaves: progress.json and images.npy, no meta.json
        (d / "meta.json").rename(d / "progress.json")
    elif case == "corrupt-meta":
        (d / "meta.json").write_text("{not json")
    elif case == "incomplete":
        (d / "meta.json").write_text(json.dumps(meta | {"complete": False}))
    elif case == "truncated-images":
        raw = (d / "images.npy").read_bytes()
        (d / "images.npy").write_bytes(raw[: len(raw) // 2])
    elif case == "no-images":
        (d / "images.npy").unlink()
    elif case == "pickled-images":
        np.save(d / "images.npy", np.array([{"an": "object"}] * 16, dtype=object), allow_pickle=True)
    elif case == "wrong-dtype":
        np.save(d / "images.npy", make_images(16, 32).astype(np.float32))
    elif case == "wrong-size":
        save_dataset(d, make_images(16, 64))
    elif case == "count-mismatch":
        (d / "meta.json").write_text(json.dumps(meta | {"count": 99}))
    elif case in ("labels-mismatch", "labels-out-of-range"):  # a labelled dataset whose labels.npy does not fit
        save_dataset(d, make_images(16, 32), labels=np.arange(16) % 2, classes=["a", "b"])
        np.save(d / "labels.npy", np.arange(15) % 2 if case == "labels-mismatch" else np.arange(16) % 3)


def _save(obj, path):
    torch.save(obj, path)


def _lmdb(ws, name):
    directory, _ = make_lsun_lmdb(ws / "lmdb-src", n=2)
    return directory.rename(ws / name)


def _with_config(ws, **changes):
    ck = _ckpt(ws)
    return ck | {"model_config": ck["model_config"] | changes}


def _conditional(ws):
    """cond.pt: the tiny run's checkpoint as a 3-class conditional model (fresh weights) with its class names."""
    from sagan_cli.models import build
    from sagan_cli.models.config import ModelConfig

    ck = _ckpt(ws)
    cfg = ModelConfig.from_dict(ck["model_config"] | {"num_classes": 3})
    G, D = build(cfg)
    _save(ck | {"model_config": cfg.to_dict(), "G": G.state_dict(), "G_ema": G.state_dict(), "D": D.state_dict(),
                "data": ck["data"] | {"classes": ["disc", "square", "stripe"]}}, ws / "cond.pt")


def _foreign_dir(ws):
    (ws / "mine").mkdir()
    (ws / "mine" / "thesis.tex").write_text("precious")


def _images(ws, name, files):
    """``ws/name/``: each ``file name -> (side, or None for bytes that are no image)``."""
    (ws / name).mkdir()
    for file, side in files.items():
        if side is None:
            (ws / name / file).write_bytes(b"not an image")
        else:
            Image.new("RGB", (side, side), (90, 30, 200)).save(ws / name / file)


def _future_config(ws):
    """A run's config.json as a later version might write it: an option this version does not have."""
    config = json.loads((ws / RUN / "config.json").read_text())
    config["train"]["warmup_steps"] = 500
    (ws / "future.json").write_text(json.dumps(config))


def _safetensors(ws, name, torn):
    """A safetensors file that is not a sagan export (``torn``: a sagan one cut short, as a killed copy leaves it)."""
    from safetensors.torch import save

    raw = save({"w": torch.zeros(4096)}, {"format": json.dumps("sagan-generator")} if torn else {"format": "pt"})
    (ws / name).write_bytes(raw[: len(raw) // 2] if torn else raw)


def _exported(ws, name):
    from sagan_cli.train import export

    state = torch.load(ws / "ckpt.pt", weights_only=True)
    export.export(state, ws / "ckpt.pt", ws / name, ema=True, standing=False)


def _garbage_lmdb(ws):
    (ws / "garbage").mkdir()
    (ws / "garbage" / "data.mdb").write_bytes(b"\0" * 100)


SETUPS = {
    "dir": lambda ws: (ws / "somedir").mkdir(),
    "dir-png": lambda ws: (ws / "somedir.png").mkdir(),
    "text": lambda ws: (ws / "notes.txt").write_text("hello, I am not what you are looking for\n"),
    "afile": lambda ws: (ws / "afile").write_text("a file\n"),
    "png": lambda ws: Image.new("RGB", (4, 4)).save(ws / "image.png"),
    "empty": lambda ws: (ws / "empty.pt").write_bytes(b""),
    "npy": lambda ws: np.save(ws / "array.npy", np.zeros(3)),
    "raw-pickle": lambda ws: (ws / "pickle.pkl").write_bytes(pickle.dumps({"format": "sagan-checkpoint"})),
    "truncated": lambda ws: (ws / "truncated.pt").write_bytes((ws / "ckpt.pt").read_bytes()[:300_000]),
    "foreign": lambda ws: _save({"state_dict": {"w": torch.zeros(2)}}, ws / "foreign.pt"),
    "newer": lambda ws: _save(_ckpt(ws) | {"format_version": 2}, ws / "newer.pt"),
    "incomplete": lambda ws: _save({k: v for k, v in _ckpt(ws).items() if k != "model_config"}, ws / "incomplete.pt"),
    "payload": lambda ws: _save(_ckpt(ws) | {"extra": FileMaker(ws / "PWNED")}, ws / "payload.pt"),
    "g-only": lambda ws: _save({k: v for k, v in _ckpt(ws).items()
                                if k in ("format", "format_version", "model_config", "step", "G", "G_ema")}, ws / "g-only.pt"),
    "mismatch": lambda ws: _save(_with_config(ws, g_conv_dim=8), ws / "mismatch.pt"),
    "noema": lambda ws: _save(_ckpt(ws) | {"G_ema": None}, ws / "noema.pt"),
    "no-d-attn": lambda ws: _save(_with_config(ws, d_attn=[]), ws / "no-d-attn.pt"),
    "no-runs": lambda ws: shutil.rmtree(ws / "runs"),
    "fresh-run": lambda ws: (ws / "fresh").mkdir() or (ws / "fresh" / "metrics.jsonl").write_text(""),
    "big-data": lambda ws: save_dataset(ws / "big", make_images(16, 64)),
    "exported-pt": lambda ws: _exported(ws, "G.pt"),
    "other-data": lambda ws: save_dataset(ws / "data" / "other-32", make_images(64, 32, seed=1)),
    "foreign-dir": _foreign_dir,
    "cond": _conditional,
    "garbage-lmdb": _garbage_lmdb,
    "future-config": _future_config,
    "g-file": lambda ws: (ws / "G.safetensors").write_bytes(b"an earlier export"),
    "torn-safetensors": lambda ws: _safetensors(ws, "torn.safetensors", torn=True),
    "foreign-safetensors": lambda ws: _safetensors(ws, "model.safetensors", torn=False),
    "tiny-images": lambda ws: _images(ws, "tiny", {"a.png": 10, "b.png": 12}),
    "small-data": lambda ws: save_dataset(ws / "small", make_images(16, 8)),
    "junk-images": lambda ws: _images(ws, "junk", {"a.png": None, "b.jpg": None}),
    "mixed-images": lambda ws: _images(ws, "mixed", {"a.png": 8, "b.png": None, "c.png": 8}),
    "bridge-lmdb": lambda ws: _lmdb(ws, "bridge_train_lmdb"),
    "bridge-zip": lambda ws: (ws / "bridge_train_lmdb.zip").write_bytes(b"PK"),
    "nodata-zip": lambda ws: zipfile.ZipFile(ws / "nodata.zip", "w").close(),
    "class-folders-top": lambda ws: make_class_folders(ws / "classes", {"a": 1, "b": 1}, top=2),
    "one-class-folder": lambda ws: make_class_folders(ws / "oneclass", {"only": 2}),
    "cifar-pickle": lambda ws: make_cifar_pickle(ws / "cifar-10-python.tar.gz"),
    "evil-zip": lambda ws: make_zip(_lmdb(ws, "church_outdoor_train_lmdb"), ws / "evil.zip", extra={"../escaped.txt": b"x"}),
}


@pytest.fixture
def workspace(tmp_path, tmp_path_factory):
    base = base_workspace(tmp_path_factory)
    shutil.copytree(base / "data", tmp_path / "data")
    shutil.copytree(base / "runs", tmp_path / "runs")
    shutil.copyfile(base / RUN / "checkpoints" / "latest.pt", tmp_path / "ckpt.pt")
    (tmp_path / "w.pth").write_bytes(b"")  # evaluate looks for its Inception weights before anything else
    return tmp_path


def skip_reason(case) -> str | None:
    if case.needs == "no-cuda" and torch.cuda.is_available():
        return "a CUDA device is present"
    if case.needs == "no-mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "MPS is present"
    if case.needs == "no-tensorboard" and importlib.util.find_spec("tensorboard") is not None:
        return "tensorboard is installed"
    if case.command == "evaluate":
        import inspect

        from sagan_cli.cli.evaluate import evaluate

        if "ckpt" not in inspect.signature(evaluate).parameters:
            return "sagan evaluate is not built yet"
    return None


def argv(case) -> list[str]:
    return case.command.split() + (BASE.get(case.command, []) if case.base else []) + shlex.split(case.args)


# -------------------------------------------------------------------- the docs table
FRAMEWORK = re.compile(r"^(Invalid value for '[^']+'|No such option: \S+|Missing (option|argument) '[^']+'|"
                       r"Got unexpected extra argument \(\S+\))")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def _uncell(text: str) -> str:
    return text.replace("\\|", "|").replace("&lt;", "<")


def doc_row(case, message: str) -> str:
    shown = " ".join(["sagan", case.command, case.args]).strip()
    return f"| `{case.id}` | `{_cell(shown)}` | {_cell(message)} | {case.code} |"


def doc_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `([a-z0-9-]+)` \|", line)
        if m:
            assert m.group(1) not in rows, f"case {m.group(1)} is listed twice in docs/errors.md"
            rows[m.group(1)] = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    return rows


def normalise(message: str, root: Path) -> str:
    for prefix in {str(root.resolve()), str(root)}:
        message = message.replace(prefix + "/", "").replace(prefix, ".")
    return message


def check_documented(case, message: str) -> None:
    rows = doc_rows()
    expected = doc_row(case, message)
    assert case.id in rows, f"docs/errors.md has no row for {case.id}; add:\n{expected}"
    want = [c.strip() for c in re.split(r"(?<!\\)\|", expected)[1:-1]]
    shown, documented, code = rows[case.id][1:4]
    assert (shown, code) == (want[1], want[3]), f"docs/errors.md row {case.id} is out of date; it should read:\n{expected}"
    documented = _uncell(documented)
    framework = FRAMEWORK.match(message)
    if framework:  # Click/Typer's own wording changes between versions: the option it names is what matters
        assert documented.startswith(framework.group(1)), f"docs/errors.md row {case.id} should read:\n{expected}"
    elif not case.exact:
        head = message.split(" (")[0]
        assert documented.split(" (")[0] == head, f"docs/errors.md row {case.id} is out of date; it should read:\n{expected}"
    else:
        assert documented == message, f"docs/errors.md row {case.id} is out of date; it should read:\n{expected}"
