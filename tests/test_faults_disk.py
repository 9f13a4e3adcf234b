"""A full disk (or any failing write) while writing checkpoints, images, maps, datasets, unpacking or downloading:
one `error:` line, the previous file intact, nothing half-written under a final name, no temporary file left."""

from __future__ import annotations

import errno
import os
import re
import resource
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from conftest import assert_one_line_error
from faults_helpers import DATA, RUN, TINY, checkpoint_steps, load, populate, sagan_env, temp_files

ENOSPC = OSError(errno.ENOSPC, "No space left on device")
CKDIR = f"{RUN}/checkpoints"


class _Full:
    """A file object whose writes fail with ENOSPC once ``room`` bytes went through (those reach the file)."""

    def __init__(self, fh, room: int):
        self._fh, self._room = fh, room

    def write(self, data):
        data = data if isinstance(data, str) else bytes(data)
        if len(data) > self._room:
            self._fh.write(data[: self._room])
            self._room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


def fill_disk(monkeypatch, pattern: str, room: int = 1000, at: str = "write"):
    """Writes through ``atomic_open`` to a final name matching ``pattern`` fail with ENOSPC — in ``write``
    after ``room`` bytes, or at ``fsync``. Returns a function that ends the fault (monkeypatch.undo would
    also undo the `cli` fixture's chdir)."""
    names, real = {}, (tempfile.mkstemp, os.fdopen, os.fsync)

    def mkstemp(*a, **k):
        fd, name = real[0](*a, **k)
        if re.search(pattern, os.path.basename(name)):
            names[fd] = name
        return fd, name

    def fdopen(fd, mode="r", *a, **k):
        fh = real[1](fd, mode, *a, **k)
        return _Full(fh, room) if fd in names and at == "write" else fh

    def fsync(fd):
        if fd in names and at == "fsync":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real[2](fd)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(os, "fsync", fsync)

    def restore():
        monkeypatch.setattr(tempfile, "mkstemp", real[0])
        monkeypatch.setattr(os, "fdopen", real[1])
        monkeypatch.setattr(os, "fsync", real[2])

    return restore


def _train(cli, *extra):
    return cli("train", *TINY, "--data", DATA, "--batch", 8, "--log-every", 1, "--sample-every", 1000, *extra)


# ------------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("at", ["write", "fsync"])
def test_disk_full_while_writing_a_checkpoint(cli, tmp_path, tmp_path_factory, monkeypatch, at):
    populate(tmp_path, tmp_path_factory, run=False)
    restore = fill_disk(monkeypatch, r"^\.step-0000004\.pt\.", at=at)
    r = _train(cli, "--steps", 6, "--ckpt-every", 2)
    assert_one_line_error(r, f"disk full while writing checkpoint {CKDIR}/step-0000004.pt",
                          f"the last checkpoint, {CKDIR}/step-0000002.pt, is intact")
    assert r.code == 2
    ckdir = tmp_path / CKDIR
    assert checkpoint_steps(ckdir) == {"latest.pt": 2, "step-0000002.pt": 2}  # all load; no half file renamed into place
    assert temp_files(ckdir) == []
    restore()
    r = cli("train", "--resume", "latest", "--steps", 6, "--device", "cpu")
    assert r.code == 0 and "from step 2" in r.stdout, r.stderr
    assert load(ckdir / "latest.pt")["step"] == 6


def test_disk_full_while_re_pointing_latest_pt(cli, tmp_path, tmp_path_factory, monkeypatch):
    """No hard links on this filesystem, and the copy to latest.pt fails: step-N.pt is complete, so
    'latest' means it, not the stale latest.pt."""
    populate(tmp_path, tmp_path_factory, run=False)

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    restore = fill_disk(monkeypatch, r"^\.latest\.pt\.", room=10_000_000)
    assert _train(cli, "--steps", 2, "--ckpt-every", 2).code == 0  # a copy works while there is room
    restore()
    restore = fill_disk(monkeypatch, r"^\.latest\.pt\.")
    r = cli("train", "--resume", "latest", "--steps", 4, "--device", "cpu")
    assert_one_line_error(r, f"{CKDIR}/step-0000004.pt was saved but {CKDIR}/latest.pt could not be updated (disk full)",
                          f"--resume {CKDIR}/step-0000004.pt")
    ckdir = tmp_path / CKDIR
    assert checkpoint_steps(ckdir) == {"latest.pt": 2, "step-0000002.pt": 2, "step-0000004.pt": 4}
    assert temp_files(ckdir) == []
    restore()
    from sagan_cli.train.runs import latest_checkpoint

    assert latest_checkpoint(tmp_path / "runs") == ckdir / "step-0000004.pt"
    r = cli("train", "--resume", "latest", "--steps", 6, "--device", "cpu")
    assert r.code == 0 and "from step 4" in r.stdout, r.stderr


def test_disk_full_while_writing_a_sample_grid_stops_the_run_with_its_checkpoints_intact(cli, tmp_path, tmp_path_factory,
                                                                                        monkeypatch):
    populate(tmp_path, tmp_path_factory, run=False)
    fill_disk(monkeypatch, r"^\.step-0000004\.png\.", room=100)
    r = cli("train", *TINY, "--data", DATA, "--batch", 8, "--steps", 6, "--ckpt-every", 2, "--sample-every", 2)
    assert_one_line_error(r, f"disk full while writing {RUN}/samples/step-0000004.png")
    assert checkpoint_steps(tmp_path / CKDIR) == {"latest.pt": 2, "step-0000002.pt": 2}
    assert sorted(os.listdir(tmp_path / RUN / "samples")) == ["step-0000002.png"]


def _file_size_limit(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_real_failing_write_inside_torch_save_is_one_line(tmp_path, tmp_path_factory):
    """The kernel refuses the write (RLIMIT_FSIZE: EFBIG) from inside torch.save, which would otherwise
    surface as torch's opaque 'unexpected pos' RuntimeError and a traceback."""
    populate(tmp_path, tmp_path_factory, run=False)
    r = subprocess.run([sys.executable, "-m", "sagan_cli", "train", *TINY, "--data", DATA, "--steps", "3", "--batch", "8",
                        "--ckpt-every", "1", "--sample-every", "1000"],
                       cwd=tmp_path, env=sagan_env(), capture_output=True, text=True, timeout=300,
                       preexec_fn=_file_size_limit(1 << 20))  # a checkpoint is ~2 MB
    assert_one_line_error(r, f"cannot write checkpoint {CKDIR}/step-0000001.pt (File too large)",
                          "no earlier checkpoint of this run exists")
    assert os.listdir(tmp_path / CKDIR) == []


def test_a_real_failing_write_while_preparing_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sagan_cli", "prepare", "synthetic", "--imsize", "32", "--count", "5000",
                        "--out", "ds"], cwd=tmp_path, env=sagan_env(), capture_output=True, text=True, timeout=120,
                       preexec_fn=_file_size_limit(1 << 20))  # images.npy needs 15 MB
    assert_one_line_error(r, "cannot write the dataset in ds", "File too large")
    from sagan_cli.data.dataset import open_dataset
    from sagan_cli.util.errors import SaganError

    with pytest.raises(SaganError, match="not a complete prepared dataset"):
        open_dataset(tmp_path / "ds")


# ------------------------------------------------------------------ sample / attn-map outputs
@pytest.mark.parametrize("args,target", [
    (["sample", "-n", 4, "--out", "grid.png"], "grid.png"),
    (["sample", "--seeds", "0-3", "--outdir", "imgs"], "imgs/seed000002.png"),
    (["sample", "--interpolate", 3, "--seeds", "0-1", "--out", "lerp.png"], "lerp.png"),
    (["attn-map", "--query", "3,4", "--out", "map.png"], "map.png"),
    (["attn-map", "--query", "3,4", "--save-maps", "maps.npz"], "maps.npz"),
])
def test_disk_full_while_writing_an_output(cli, tmp_path, tmp_path_factory, monkeypatch, args, target):
    populate(tmp_path, tmp_path_factory)
    name = os.path.basename(target)
    fill_disk(monkeypatch, rf"^\.{re.escape(name)}\.", room=100)
    r = cli(*args, "--device", "cpu")
    assert_one_line_error(r, "disk full while writing", name, "nothing was written under that name")
    assert not (tmp_path / target).exists()
    assert temp_files(tmp_path) == [] and temp_files((tmp_path / target).parent) == []


# ------------------------------------------------------------------ prepare: finalise, preview, first commit
def test_disk_full_while_finishing_images_npy_then_rerun(cli, tmp_path, monkeypatch):
    from sagan_cli.data.prepare import npyfile
    from sagan_cli.data.dataset import open_dataset
    from sagan_cli.data.prepare.synthetic import render

    real_fsync, real_finalise, phase = os.fsync, npyfile.finalise, {"in": False}

    def fsync(fd):
        if phase["in"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    def finalise(*a, **k):
        phase["in"] = True
        try:
            return real_finalise(*a, **k)
        finally:
            phase["in"] = False

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(npyfile, "finalise", finalise)
    args = ("prepare", "synthetic", "--imsize", 32, "--count", 300, "--workers", 1, "--out", "ds")
    r = cli(*args)
    assert_one_line_error(r, "disk full while writing ds", "re-run the same command to resume")
    assert not (tmp_path / "ds" / "meta.json").exists()
    monkeypatch.setattr(os, "fsync", real_fsync)
    r = cli(*args)
    assert r.code == 0, r.stderr
    assert "resuming" in r.stdout and "only the files were left to finish" in r.stdout
    np.testing.assert_array_equal(open_dataset(tmp_path / "ds").images[299], render(0, 299, 32))


def test_disk_full_while_writing_the_preview(cli, tmp_path, monkeypatch):
    from sagan_cli.data.dataset import open_dataset

    fill_disk(monkeypatch, r"^\.preview\.png\.", room=50)
    r = cli("prepare", "synthetic", "--imsize", 32, "--count", 100, "--out", "ds", "--preview")
    assert_one_line_error(r, "disk full while writing ds/preview.png")
    assert len(open_dataset(tmp_path / "ds")) == 100  # the dataset itself was finished first
    assert sorted(os.listdir(tmp_path / "ds")) == ["images.npy", "meta.json"]


def test_prepare_killed_in_its_first_write_leaves_a_directory_it_can_resume(cli, tmp_path):
    """SIGKILL while the first progress.json is written leaves only a temporary file: that directory is
    still ours (not 'a non-empty foreign directory'), and every leftover temp file is removed."""
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / ".progress.json.k1ll3d.tmp").write_text('{"format": "sagan-prep')
    r = cli("prepare", "synthetic", "--imsize", 32, "--count", 100, "--out", "ds")
    assert r.code == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "ds")) == ["images.npy", "meta.json"]
    # ... and temp files next to a resumable run are removed too
    (tmp_path / "ds2").mkdir()
    (tmp_path / "ds2" / "thesis.tex").write_text("precious")
    (tmp_path / "ds2" / ".progress.json.k1ll3d.tmp").write_text("x")
    assert_one_line_error(cli("prepare", "synthetic", "--count", 10, "--out", "ds2"), "non-empty directory")
    assert sorted(os.listdir(tmp_path / "ds2")) == [".progress.json.k1ll3d.tmp", "thesis.tex"]  # not ours: untouched


# ------------------------------------------------------------------ unpack and download
def test_disk_full_while_unpacking_then_rerun(cli, tmp_path, monkeypatch):
    from prepare_helpers import CATEGORY, make_lsun_lmdb, make_zip
    from sagan_cli.data.prepare import archive

    directory, _ = make_lsun_lmdb(tmp_path / "src", n=10)
    zip_path = make_zip(directory, tmp_path / "church_outdoor_train_lmdb.zip")

    def full_open(path, mode="r", *a, **k):
        fh = open(path, mode, *a, **k)
        return _Full(fh, 4096) if str(path).endswith(".part") and "w" in mode else fh

    monkeypatch.setattr(archive, "open", full_open, raising=False)
    args = ("prepare", "lsun", CATEGORY, "--zip", zip_path, "--imsize", 32, "--workers", 1, "--lsun-dir", "u", "--out", "o")
    r = cli(*args)
    assert_one_line_error(r, "disk full while unpacking church_outdoor_train_lmdb.zip")
    left = [p.name for p in (tmp_path / "u").rglob("*") if p.is_file()]
    assert left == [], f"half-unpacked files left: {left}"
    monkeypatch.delattr(archive, "open")
    r = cli(*args)
    assert r.code == 0, r.stderr
    assert "unpacking" in r.stdout


def test_disk_full_while_downloading_keeps_the_part_for_resume(cli, tmp_path, monkeypatch):
    from prepare_helpers import CATEGORY, STEM, FileServer, make_lsun_lmdb, make_zip
    from sagan_cli.data.prepare import download

    directory, _ = make_lsun_lmdb(tmp_path / "src", n=10)
    data = make_zip(directory, tmp_path / "z.zip").read_bytes()

    def full_open(path, mode="r", *a, **k):
        fh = open(path, mode, *a, **k)
        return _Full(fh, len(data) // 2) if str(path).endswith(".part") else fh

    monkeypatch.setattr(download, "open", full_open, raising=False)
    with FileServer(data, f"{STEM}.zip") as server:
        monkeypatch.setenv("SAGAN_LSUN_URL", server.base)
        args = ("prepare", "lsun", CATEGORY, "--download", "--imsize", 32, "--workers", 1, "--out", "o")
        r = cli(*args)
        assert_one_line_error(r, "disk full while downloading", "re-run to resume")
        part = tmp_path / "data" / "lsun" / f"{STEM}.zip.part"
        assert part.read_bytes() == data[: len(data) // 2]
        assert not (tmp_path / "data" / "lsun" / f"{STEM}.zip").exists()
        monkeypatch.delattr(download, "open")
        r = cli(*args)
    assert r.code == 0, r.stderr
    assert server.ranges[-1] == f"bytes={len(data) // 2}-"
    assert (tmp_path / "data" / "lsun" / f"{STEM}.zip").read_bytes() == data


# ------------------------------------------------------------------ the run's own logs (files this module does not own)
def test_disk_full_while_appending_metrics_is_one_line(cli, tmp_path, tmp_path_factory, monkeypatch):
    from sagan_cli.train import log as logmod

    populate(tmp_path, tmp_path_factory, run=False)

    def full_open(path, mode="r", *a, **k):
        fh = open(path, mode, *a, **k)
        return _Full(fh, 1500) if str(path).endswith("metrics.jsonl") else fh

    monkeypatch.setattr(logmod, "open", full_open, raising=False)
    r = _train(cli, "--steps", 8, "--ckpt-every", 2)
    assert_one_line_error(r, "disk full", "metrics.jsonl")
    assert checkpoint_steps(tmp_path / CKDIR)["latest.pt"] >= 2


def test_disk_full_while_writing_config_json_is_one_line(cli, tmp_path, tmp_path_factory, monkeypatch):
    populate(tmp_path, tmp_path_factory, run=False)
    fill_disk(monkeypatch, r"^\.config\.json\.", room=10)
    r = _train(cli, "--steps", 2)
    assert_one_line_error(r, "disk full while writing", "config.json")
    assert not (tmp_path / RUN).exists()  # no empty run directory that would take a number
