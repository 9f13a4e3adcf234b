"""Resume, --force, a full disk and other interruptions: never a half-written dataset that train accepts."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, assert_one_line_error, run_sagan
from prepare_helpers import CATEGORY, make_lsun_lmdb
from sagan_cli.data.prepare import pipeline as prepare
from sagan_cli.data.prepare import state as outdir
from sagan_cli.data.dataset import open_dataset
from sagan_cli.data.prepare.synthetic import render
from sagan_cli.util.errors import SaganError

SYN = ("prepare", "synthetic", "--imsize", 32, "--count", 1000, "--workers", 1, "--out", "ds")


def _refused(path):
    with pytest.raises(SaganError):
        open_dataset(path)


@pytest.fixture
def commit_every_chunk(monkeypatch):
    monkeypatch.setattr(prepare, "COMMIT_EVERY_S", 0.0)


def _fail_on_call(monkeypatch, module, name, n, exc):
    """Make module.name raise ``exc`` on its n-th call (1-based), pass through otherwise.
    Returns a function that puts the original back (monkeypatch.undo would also undo the cli chdir)."""
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return lambda: monkeypatch.setattr(module, name, real)


def test_interrupt_then_rerun_resumes_to_identical_bytes(cli, tmp_path, monkeypatch, commit_every_chunk):
    assert cli(*SYN[:-1], "whole").code == 0
    restore = _fail_on_call(monkeypatch, prepare, "process_chunk", 4, KeyboardInterrupt())
    r = cli(*SYN)
    assert_one_line_error(r, "interrupted after 384 of 1000", "re-run")
    assert r.code == 130
    _refused(tmp_path / "ds")
    state = json.loads((tmp_path / "ds" / "progress.json").read_text())
    assert (state["written"], state["consumed"]) == (384, 384)
    restore()
    r = cli(*SYN)
    assert r.code == 0, r.stderr
    assert "resuming" in r.stdout and "384 of 1000" in r.stdout
    assert (tmp_path / "ds" / "images.npy").read_bytes() == (tmp_path / "whole" / "images.npy").read_bytes()
    assert not (tmp_path / "ds" / "progress.json").exists()
    assert open_dataset(tmp_path / "ds").fingerprint == open_dataset(tmp_path / "whole").fingerprint


def test_resume_keeps_skip_records(cli, tmp_path, monkeypatch, commit_every_chunk):
    directory, _ = make_lsun_lmdb(tmp_path / "src", n=70, corrupt=(5, 60))
    args = ("prepare", "lsun", CATEGORY, "--lmdb", directory, "--imsize", 32, "--workers", 1, "--out")
    assert cli(*args, "whole").code == 0
    restore = _fail_on_call(monkeypatch, prepare, "process_chunk", 2, KeyboardInterrupt())
    assert cli(*args, "ds").code == 130
    restore()
    state = json.loads((tmp_path / "ds" / "progress.json").read_text())
    assert state["consumed"] == 32 and bytes.fromhex(state["position"]) == sorted(_keys(tmp_path))[31]
    assert cli(*args, "ds").code == 0
    whole, ds = open_dataset(tmp_path / "whole"), open_dataset(tmp_path / "ds")
    assert ds.meta["skipped"] == whole.meta["skipped"] and ds.meta["skipped_count"] == 2
    np.testing.assert_array_equal(np.asarray(ds.images), np.asarray(whole.images))


def _keys(tmp_path):
    import lmdb

    env = lmdb.open(str(tmp_path / "src" / "church_outdoor_train_lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        keys = [k for k, _ in txn.cursor()]
    env.close()
    return keys


def test_sigint_to_a_real_process_then_resume(tmp_path):
    """Ctrl-C on the real CLI with worker processes: exit 130, one line, and the re-run finishes."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    args = ["prepare", "synthetic", "--imsize", 32, "--count", 40000, "--workers", 2, "--out", "ds"]
    # The real CLI in a real process, committing after every chunk: with the default 2 s interval a
    # fast machine wrote all 40000 rows (2.2 s here) before the first commit, so the signal came too late.
    launcher = ("import sys; from sagan_cli.data.prepare import pipeline as prepare; prepare.COMMIT_EVERY_S = 0.0; "
                "from sagan_cli.cli import main; sys.argv[0] = 'sagan'; main()")
    cmd = [sys.executable, "-c", launcher, *args]
    proc = subprocess.Popen(list(map(str, cmd)), cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    progress = tmp_path / "ds" / "progress.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if progress.exists() and json.loads(progress.read_text()).get("written", 0) > 0:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before it could be interrupted")
    assert proc.returncode == 130, err
    assert err.strip().startswith("error: interrupted") and len(err.strip().splitlines()) == 1, err
    _refused(tmp_path / "ds")
    done = json.loads(progress.read_text())["written"]
    assert 0 < done < 40000
    r = run_sagan(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"resuming ds: {done} of 40000" in r.stdout
    images = open_dataset(tmp_path / "ds").images
    for i in (0, done - 1, done, 39999):
        np.testing.assert_array_equal(images[i], render(0, i, 32))


def test_finished_dataset_is_not_rebuilt_unless_forced(cli, tmp_path):
    assert cli(*SYN).code == 0
    npy = tmp_path / "ds" / "images.npy"
    before = npy.stat().st_ino, npy.stat().st_mtime_ns
    r = cli(*SYN)
    assert r.code == 0 and "already prepared" in r.stdout and "--force" in r.stdout
    assert (npy.stat().st_ino, npy.stat().st_mtime_ns) == before
    r = cli(*SYN, "--force")
    assert r.code == 0 and "prepared 1000 images" in r.stdout
    assert npy.stat().st_mtime_ns != before[1]


def test_different_options_into_the_same_out(cli, tmp_path, monkeypatch, commit_every_chunk):
    assert cli(*SYN).code == 0
    r = cli("prepare", "synthetic", "--imsize", 32, "--count", 1000, "--seed", 1, "--out", "ds")
    assert_one_line_error(r, "made differently", "seed 0 → 1", "--force")
    assert cli("prepare", "synthetic", "--imsize", 32, "--count", 1000, "--seed", 1, "--out", "ds", "--force").code == 0
    assert open_dataset(tmp_path / "ds").meta["seed"] == 1
    # an unfinished one made with other options is not silently mixed either
    restore = _fail_on_call(monkeypatch, prepare, "process_chunk", 2, KeyboardInterrupt())
    assert cli("prepare", "synthetic", "--imsize", 32, "--count", 900, "--out", "part", "--workers", 1).code == 130
    restore()
    assert_one_line_error(cli("prepare", "synthetic", "--imsize", 32, "--count", 800, "--out", "part"), "unfinished", "count 900 → 800")


def test_foreign_directory_is_never_touched(cli, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    for extra in ((), ("--force",)):
        assert_one_line_error(cli("prepare", "synthetic", "--count", 10, "--out", "mine", *extra), "non-empty")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(cli("prepare", "synthetic", "--count", 10, "--out", "afile"), "not a directory")


def test_disk_full_at_allocation(cli, tmp_path, monkeypatch):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    r = cli(*SYN)
    assert_one_line_error(r, "not enough disk space")
    _refused(tmp_path / "ds")


def test_disk_full_while_recording_progress_then_resume(cli, tmp_path, monkeypatch, commit_every_chunk):
    restore = _fail_on_call(monkeypatch, outdir, "atomic_write_json", 3, OSError(errno.ENOSPC, "No space left on device"))
    r = cli(*SYN)
    assert_one_line_error(r, "disk full", "re-run")
    _refused(tmp_path / "ds")
    restore()
    r = cli(*SYN)
    assert r.code == 0 and "resuming" in r.stdout
    np.testing.assert_array_equal(open_dataset(tmp_path / "ds").images[999], render(0, 999, 32))


def test_disk_full_while_writing_meta(cli, tmp_path, monkeypatch):
    restore = _fail_on_call(monkeypatch, prepare, "write_meta", 1, OSError(errno.ENOSPC, "No space left on device"))
    r = cli(*SYN)
    assert_one_line_error(r, "disk full")
    assert not (tmp_path / "ds" / "meta.json").exists()
    _refused(tmp_path / "ds")
    restore()
    r = cli(*SYN)  # everything was read: the re-run only finishes the files
    assert r.code == 0, r.stderr
    assert len(open_dataset(tmp_path / "ds")) == 1000


def test_disk_full_inside_atomic_meta_write_leaves_no_meta(cli, tmp_path, monkeypatch):
    """The real atomic writer: a failing write leaves neither meta.json nor a temp file."""
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fdopen(fd, mode="r", *a, **k):
        fh = real_fdopen(fd, mode, *a, **k)
        return Full(fh) if "w" in mode and phase["now"] == "meta" else fh

    phase = {"now": "data"}
    real_finalise = prepare.npyfile.finalise

    def finalise(*a, **k):
        fp = real_finalise(*a, **k)
        phase["now"] = "meta"
        return fp

    monkeypatch.setattr(prepare.npyfile, "finalise", finalise)
    monkeypatch.setattr(os, "fdopen", fdopen)
    r = cli(*SYN)
    assert_one_line_error(r, "disk full")
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["images.npy", "progress.json"]
    _refused(tmp_path / "ds")


def test_preview_grid(cli, tmp_path):
    from PIL import Image

    r = cli(*SYN, "--preview")
    assert r.code == 0 and "preview:" in r.stdout
    grid = np.asarray(Image.open(tmp_path / "ds" / "preview.png"))
    assert grid.shape == (8 * 34 + 2, 8 * 34 + 2, 3)  # 64 tiles of 32px, 2px gaps
    np.testing.assert_array_equal(grid[2:34, 2:34], render(0, 0, 32).transpose(1, 2, 0))
    np.testing.assert_array_equal(grid[-34:-2, -34:-2], render(0, 63, 32).transpose(1, 2, 0))
    (tmp_path / "ds" / "preview.png").unlink()
    r = cli(*SYN, "--preview")  # already prepared: the preview is still written
    assert "already prepared" in r.stdout and (tmp_path / "ds" / "preview.png").exists()


def test_a_source_that_changed_is_not_resumed(cli, tmp_path, monkeypatch, commit_every_chunk):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    for i in range(40):
        Image.new("RGB", (24, 20), (i, 2 * i, 3 * i)).save(tmp_path / "imgs" / f"{i:03d}.png")
    restore = _fail_on_call(monkeypatch, prepare, "process_chunk", 2, KeyboardInterrupt())
    assert cli("prepare", "folder", "imgs", "--imsize", 32, "--workers", 1, "--out", "o").code == 130
    restore()
    Image.new("RGB", (24, 20)).save(tmp_path / "imgs" / "new.png")
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--out", "o")
    assert_one_line_error(r, "source changed", "entries 40 → 41", "--force")
    r = cli("prepare", "folder", "imgs", "--imsize", 32, "--out", "o", "--force")
    assert r.code == 0 and len(open_dataset(tmp_path / "o")) == 41
