"""Untrusted files: a checkpoint or dataset carrying a pickle payload never runs it; an archive never writes
outside its target directory; nothing in the package unpickles what it reads from disk."""

from __future__ import annotations

import ast
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, assert_one_line_error
from faults_helpers import DATA, RUN, populate
from payloads import FileMaker, ShellCommand


def _payload_checkpoint(tmp_path, kind: str) -> Path:
    pwned = tmp_path / "PWNED"
    good = torch.load(tmp_path / RUN / "checkpoints" / "latest.pt", weights_only=True)
    p = tmp_path / f"{kind}.pt"
    if kind == "zip-open":  # the current torch.save format, payload in an extra entry of a real checkpoint
        torch.save({**good, "extra": FileMaker(pwned)}, p)
    elif kind == "zip-system":
        torch.save({**good, "G": {**good["G"], "x": ShellCommand(pwned)}}, p)
    elif kind == "legacy-torch":  # the pre-1.6 torch.save format
        torch.save({**good, "extra": FileMaker(pwned)}, p, _use_new_zipfile_serialization=False)
    elif kind == "raw-pickle":
        p.write_bytes(pickle.dumps({**good, "extra": FileMaker(pwned)}))
    return p


KINDS = ["zip-open", "zip-system", "legacy-torch", "raw-pickle"]


def test_the_payloads_are_live(tmp_path, tmp_path_factory):
    """Control: unpickled without weights_only, each payload does create the file — so the tests below,
    which assert that it is not created, can fail."""
    populate(tmp_path, tmp_path_factory)
    for kind in KINDS:
        p = _payload_checkpoint(tmp_path, kind)
        if kind == "raw-pickle":
            pickle.loads(p.read_bytes())
        else:
            torch.load(p, weights_only=False)
        assert (tmp_path / "PWNED").exists(), kind
        (tmp_path / "PWNED").unlink()


def _evaluate_ready() -> bool:
    import inspect

    from sagan_cli.cli.evaluate import evaluate

    return "ckpt" in inspect.signature(evaluate).parameters


COMMANDS = {
    "sample": lambda p: ("sample", p, "--out", "x.png", "--device", "cpu"),
    "attn-map": lambda p: ("attn-map", p, "--query", "1,1", "--out", "x.png", "--device", "cpu"),
    "train-resume": lambda p: ("train", "--resume", p, "--steps", 5, "--device", "cpu"),
    "evaluate": lambda p: ("evaluate", p, "--inception-weights", "w.pth", "--num", 2, "--device", "cpu"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_checkpoint_with_a_pickle_payload_is_refused(cli, tmp_path, tmp_path_factory, command, kind):
    if command == "evaluate" and not _evaluate_ready():
        pytest.skip("sagan evaluate is not built yet")
    populate(tmp_path, tmp_path_factory)
    (tmp_path / "w.pth").write_bytes(b"")  # evaluate checks that its weights exist before it opens the checkpoint
    p = _payload_checkpoint(tmp_path, kind)
    r = cli(*COMMANDS[command](p))
    expected = "refused to load, it holds pickled objects" if kind.startswith("zip") else "is not a sagan checkpoint"
    assert_one_line_error(r, f"{p.name}", expected)
    assert not (tmp_path / "PWNED").exists(), "the payload ran"
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", ["sample", "attn-map", "train", "evaluate"])
def test_a_payload_found_as_the_newest_runs_latest_pt_is_refused(cli, tmp_path, tmp_path_factory, command):
    """The default lookup (no CKPT, --resume latest) meets the file without the user naming it."""
    if command == "evaluate" and not _evaluate_ready():
        pytest.skip("sagan evaluate is not built yet")
    populate(tmp_path, tmp_path_factory)
    (tmp_path / "w.pth").write_bytes(b"")
    evil = _payload_checkpoint(tmp_path, "zip-open")
    run = tmp_path / "runs" / "00001-evil" / "checkpoints"
    run.mkdir(parents=True)
    os.replace(evil, run / "latest.pt")
    args = {"sample": ("sample", "--out", "x.png"), "attn-map": ("attn-map", "--query", "1,1"),
            "train": ("train", "--resume", "latest", "--steps", 5), "evaluate": ("evaluate", "--inception-weights", "w.pth")}
    r = cli(*args[command], "--device", "cpu")
    assert_one_line_error(r, "runs/00001-evil/checkpoints/latest.pt: refused to load")
    assert not (tmp_path / "PWNED").exists()


# ------------------------------------------------------------------ data directories
def _evil_dataset(tmp_path) -> Path:
    """A complete-looking prepared dataset whose images.npy is an object array carrying a payload."""
    ds = tmp_path / "evil"
    ds.mkdir()
    real = tmp_path / DATA
    (ds / "meta.json").write_text((real / "meta.json").read_text())
    arr = np.empty(64, dtype=object)
    arr[:] = [FileMaker(tmp_path / "PWNED")] * 64
    np.save(ds / "images.npy", arr, allow_pickle=True)
    return ds


def test_a_dataset_with_a_pickled_images_npy_is_refused_by_train(cli, tmp_path, tmp_path_factory):
    populate(tmp_path, tmp_path_factory, run=False)
    ds = _evil_dataset(tmp_path)
    np.load(ds / "images.npy", allow_pickle=True)  # control: the payload is live
    assert (tmp_path / "PWNED").exists()
    (tmp_path / "PWNED").unlink()
    r = cli("train", "--imsize", 32, "--data", ds, "--device", "cpu", "--steps", 2)
    assert_one_line_error(r, "evil/images.npy holds pickled Python objects, not uint8 images; refusing to load it")
    assert not (tmp_path / "PWNED").exists()


def test_a_prepared_dataset_with_a_pickled_images_npy_is_refused_by_prepare_preview(cli, tmp_path):
    assert cli("prepare", "synthetic", "--imsize", 32, "--count", 20, "--out", "ds").code == 0
    arr = np.empty(20, dtype=object)
    arr[:] = [FileMaker(tmp_path / "PWNED")] * 20
    np.save(tmp_path / "ds" / "images.npy", arr, allow_pickle=True)
    r = cli("prepare", "synthetic", "--imsize", 32, "--count", 20, "--out", "ds", "--preview")
    assert_one_line_error(r, "ds/images.npy holds pickled Python objects")
    assert not (tmp_path / "PWNED").exists()


UNPICKLERS = ("pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle")


def _aliases(tree) -> dict[str, str]:
    """Local name → what it is: `import numpy as np` gives np → numpy, `from torch import load as tl` gives
    tl → torch.load (so an aliased loader is seen through)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _calls(tree):
    """(module, function, keywords, line) of every call of the form mod.fn(...) or an imported fn(...)."""
    names = _aliases(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            target = f"{names.get(node.func.value.id, node.func.value.id)}.{node.func.attr}"
        elif isinstance(node.func, ast.Name) and node.func.id in names:
            target = names[node.func.id]
        else:
            continue
        mod, _, fn = target.rpartition(".")
        mod = {"numpy": "np"}.get(mod.split(".")[0], mod.split(".")[0])
        yield mod, fn, {k.arg: k.value for k in node.keywords}, node.lineno


def _unpickling_problems(source: str, where: str) -> list[str]:
    problems = []
    tree = ast.parse(source)
    for mod, fn, kw, line in _calls(tree):
        if mod == "np" and fn == "load":
            if not (isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is False):
                problems.append(f"{where}:{line}: np.load without allow_pickle=False")
        if mod == "torch" and fn == "load":
            if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                problems.append(f"{where}:{line}: torch.load without weights_only=True")
        if mod in UNPICKLERS and fn in ("load", "loads", "open", "Unpickler"):
            problems.append(f"{where}:{line}: {mod}.{fn}")
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            bad = [n for n in names if n and n.split(".")[0] in ("dill", "joblib", "shelve", "marshal", "cloudpickle")]
            if bad:
                problems.append(f"{where}:{node.lineno}: imports {bad}")
    return problems


def test_the_unpickling_scan_sees_through_aliases():
    """The scan below must not be fooled by a renamed module or an imported function."""
    snippet = (
        "import numpy\nimport torch as T\nimport pickle as p\nfrom pickle import loads as L\n"
        "from numpy import load\nfrom torch import load as tl\n"
        "numpy.load('a')\nT.load('b')\np.load(f)\nL(b'')\nload('c')\ntl('d', weights_only=False)\n"
        "numpy.load('ok', allow_pickle=False)\nT.load('ok', weights_only=True)\n"
    )
    found = [line.split(": ", 1)[1] for line in _unpickling_problems(snippet, "x")]
    assert found == ["np.load without allow_pickle=False", "torch.load without weights_only=True", "pickle.load",
                     "pickle.loads", "np.load without allow_pickle=False", "torch.load without weights_only=True"]


def test_no_loader_in_the_package_can_unpickle():
    """Every np.load says allow_pickle=False, every torch.load weights_only=True (aliases and imported names
    included); nothing calls pickle.load(s), and no other unpickling library (shelve, joblib, dill, marshal) is used."""
    problems = []
    for path in sorted((REPO / "sagan_cli").rglob("*.py")):
        problems += _unpickling_problems(path.read_text(), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ archives
@pytest.fixture
def lsun_zip(tmp_path):
    from prepare_helpers import STEM, make_lsun_lmdb, make_zip

    directory, _ = make_lsun_lmdb(tmp_path / "src", n=6)
    return lambda name=f"{STEM}.zip", extra=None: make_zip(directory, tmp_path / name, extra=extra)


def _nothing_escaped(tmp_path, target: str) -> None:
    outside = [p for p in tmp_path.rglob("escaped*")]
    assert not outside, outside
    assert not any(p.is_file() for p in (tmp_path / target).rglob("*")), "something was extracted"


@pytest.mark.parametrize("member,why", [
    ("..\\escaped.txt", "an absolute or non-POSIX path"),
    ("C:escaped.txt", "an absolute or non-POSIX path"),
    ("church_outdoor_train_lmdb/../../escaped.txt", "a '..' component"),
    ("../", "a '..' component"),
])
def test_zip_members_that_would_leave_the_target_are_refused(cli, tmp_path, lsun_zip, member, why):
    from prepare_helpers import CATEGORY

    z = lsun_zip(extra={member: b"pwned"})
    r = cli("prepare", "lsun", CATEGORY, "--zip", z, "--lsun-dir", "u/v", "--out", "o")
    assert_one_line_error(r, "refusing to unpack", why, "nothing was extracted")
    _nothing_escaped(tmp_path, "u")
    assert not (tmp_path / "o").exists()


def test_a_symlink_planted_in_the_target_does_not_lead_writes_outside(cli, tmp_path, lsun_zip):
    from prepare_helpers import CATEGORY, STEM

    z = lsun_zip()
    (tmp_path / "outside").mkdir()
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / STEM).symlink_to(tmp_path / "outside", target_is_directory=True)
    r = cli("prepare", "lsun", CATEGORY, "--zip", z, "--lsun-dir", "u", "--out", "o")
    assert_one_line_error(r, "refusing to unpack", "a path outside the target directory")
    assert list((tmp_path / "outside").iterdir()) == []


def test_a_downloaded_zip_is_checked_the_same_way(cli, tmp_path, lsun_zip, monkeypatch):
    from prepare_helpers import CATEGORY, STEM, FileServer

    data = lsun_zip(name="served.zip", extra={"../escaped.txt": b"pwned"}).read_bytes()
    with FileServer(data, f"{STEM}.zip") as server:
        monkeypatch.setenv("SAGAN_LSUN_URL", server.base)
        r = cli("prepare", "lsun", CATEGORY, "--download", "--lsun-dir", "dl", "--out", "o")
    assert_one_line_error(r, "refusing to unpack", "'../escaped.txt'")
    assert (tmp_path / "dl" / f"{STEM}.zip").exists()  # the download itself is kept, not its contents
    assert not (tmp_path / "escaped.txt").exists()
    assert [p.name for p in (tmp_path / "dl").iterdir()] == [f"{STEM}.zip"]
    # and a zip found in --lsun-dir from an earlier run (no --zip/--download) is checked too
    r = cli("prepare", "lsun", CATEGORY, "--lsun-dir", "dl", "--out", "o")
    assert_one_line_error(r, "refusing to unpack")
    assert not (tmp_path / "escaped.txt").exists()


def test_zip_bomb_sized_members_are_refused_before_writing(cli, tmp_path, lsun_zip, monkeypatch):
    """A zip whose members claim more bytes than the disk has free is refused up front (nothing unpacked)."""
    import shutil
    from collections import namedtuple

    from prepare_helpers import CATEGORY

    z = lsun_zip()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    r = cli("prepare", "lsun", CATEGORY, "--zip", z, "--lsun-dir", "u", "--out", "o")
    assert_one_line_error(r, "not enough disk space to unpack")
    assert not any(p.is_file() for p in (tmp_path / "u").rglob("*"))
    with zipfile.ZipFile(z) as zf:
        assert sum(i.file_size for i in zf.infolist()) > 1000
