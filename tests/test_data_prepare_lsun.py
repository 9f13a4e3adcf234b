"""`sagan prepare lsun`: lmdb and zip sources, pixels, skips, bad input."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from conftest import assert_one_line_error
from prepare_helpers import CATEGORY, STEM, make_lsun_lmdb, make_zip, reference
from sagan_cli.data.dataset import fingerprint_array, open_dataset
from sagan_cli.util.errors import SaganError


@pytest.fixture
def lsun_src(tmp_path):
    """70 entries (enough for several chunks, so --workers 2 really uses the pool), one corrupt."""
    directory, values = make_lsun_lmdb(tmp_path / "src", n=70, corrupt=(5,))
    return directory, values


def test_lmdb_and_zip_give_the_same_images_as_pillow(cli, tmp_path, lsun_src):
    directory, values = lsun_src
    zip_path = make_zip(directory, tmp_path / f"{STEM}.zip")
    r1 = cli("prepare", "lsun", CATEGORY, "--lmdb", directory, "--imsize", 32, "--workers", 2, "--out", "from-lmdb")
    assert r1.code == 0, r1.stderr
    r2 = cli("prepare", "lsun", CATEGORY, "--zip", zip_path, "--imsize", 32, "--workers", 1, "--out", "from-zip")
    assert r2.code == 0, r2.stderr
    a = (tmp_path / "from-lmdb" / "images.npy").read_bytes()
    assert a == (tmp_path / "from-zip" / "images.npy").read_bytes()

    ds = open_dataset(tmp_path / "from-lmdb", imsize=32)
    expected, bad = reference(values, 32)
    assert len(ds) == len(values) - 1 == len(expected)
    np.testing.assert_array_equal(np.asarray(ds.images), expected)
    assert ds.fingerprint == fingerprint_array(np.asarray(ds.images))
    meta = ds.meta
    assert meta["skipped_count"] == 1 and len(meta["skipped"]) == 1
    assert meta["skipped"][0]["key"] == bad[0].decode() and meta["skipped"][0]["reason"]
    assert (meta["source"], meta["category"], meta["split"]) == ("lsun", CATEGORY, "train")
    assert (meta["crop"], meta["resample"], meta["imsize"]) == ("center", "lanczos", 32)
    assert "1 undecodable entry skipped" in r1.stdout
    # the zip was unpacked under --lsun-dir (default data/lsun), nothing else appeared in the working dir
    assert (tmp_path / "data" / "lsun" / STEM / "data.mdb").is_file()
    assert {p.name for p in tmp_path.iterdir()} == {"data", "from-lmdb", "from-zip", "src", f"{STEM}.zip"}


def test_default_out_and_source_found_in_lsun_dir(cli, tmp_path, lsun_src):
    directory, _ = lsun_src
    make_zip(directory, tmp_path / "dl.zip")
    r = cli("prepare", "lsun", CATEGORY, "--zip", "dl.zip", "--imsize", 32, "--workers", 1)
    assert r.code == 0, r.stderr
    assert open_dataset(tmp_path / "data" / f"lsun-{CATEGORY}-32").imsize == 32
    # no source option: the copy unpacked under data/lsun is found; val gets its own default directory
    r = cli("prepare", "lsun", CATEGORY, "--imsize", 64, "--workers", 1)
    assert r.code == 0, r.stderr
    assert "unpacked earlier" in r.stdout
    assert len(open_dataset(tmp_path / "data" / f"lsun-{CATEGORY}-64")) == 69
    val = directory.parent / f"{CATEGORY}_val_lmdb"
    directory.rename(val)
    r = cli("prepare", "lsun", CATEGORY, "--split", "val", "--lmdb", val, "--imsize", 32, "--workers", 1)
    assert r.code == 0, r.stderr
    assert json.loads((tmp_path / "data" / f"lsun-{CATEGORY}-val-32" / "meta.json").read_text())["split"] == "val"


def test_zip_unpacked_once(cli, tmp_path, lsun_src):
    directory, _ = lsun_src
    zip_path = make_zip(directory, tmp_path / "a.zip")
    assert cli("prepare", "lsun", CATEGORY, "--zip", zip_path, "--imsize", 32, "--out", "o1").code == 0
    r = cli("prepare", "lsun", CATEGORY, "--zip", zip_path, "--imsize", 32, "--out", "o2")
    assert r.code == 0 and "unpacked from a.zip earlier" in r.stdout


def test_crop_none_and_other_filters(cli, tmp_path, lsun_src):
    directory, values = lsun_src
    r = cli("prepare", "lsun", CATEGORY, "--lmdb", directory, "--imsize", 32, "--crop", "none",
            "--resample", "bicubic", "--out", "o", "--workers", 1)
    assert r.code == 0, r.stderr
    expected, _ = reference(values, 32, crop="none", resample="bicubic")
    ds = open_dataset(tmp_path / "o")
    np.testing.assert_array_equal(np.asarray(ds.images), expected)
    assert (ds.meta["crop"], ds.meta["resample"]) == ("none", "bicubic")
    r = cli("prepare", "lsun", CATEGORY, "--lmdb", directory, "--imsize", 32, "--resample", "box", "--out", "b")
    np.testing.assert_array_equal(np.asarray(open_dataset(tmp_path / "b").images), reference(values, 32, resample="box")[0])


def test_max_images_counts_good_images(cli, tmp_path, lsun_src):
    directory, values = lsun_src
    r = cli("prepare", "lsun", CATEGORY, "--lmdb", directory, "--imsize", 32, "--max-images", 7, "--out", "o")
    assert r.code == 0, r.stderr
    ds = open_dataset(tmp_path / "o")
    expected, _ = reference(values, 32)
    assert len(ds) == 7
    np.testing.assert_array_equal(np.asarray(ds.images), expected[:7])
    # entries read = up to and including the 7th good one in key order (the corrupt one counts if before it)
    _, bad = reference(values, 8)
    keys = sorted(values)
    good_positions = [i for i, k in enumerate(keys) if k not in bad]
    assert ds.meta["entries_read"] == good_positions[6] + 1
    assert ds.meta["skipped_count"] == sum(1 for k in bad if keys.index(k) < good_positions[6])


def test_zip_with_parent_member_is_refused(cli, tmp_path, lsun_src):
    directory, _ = lsun_src
    zip_path = make_zip(directory, tmp_path / "evil.zip", extra={"../escaped.txt": b"pwned"})
    r = cli("prepare", "lsun", CATEGORY, "--zip", zip_path, "--imsize", 32, "--lsun-dir", "unpack/here")
    assert_one_line_error(r, "refusing", "../escaped.txt")
    assert not (tmp_path / "unpack" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()
    assert not any(p.is_file() for p in (tmp_path / "unpack").rglob("*"))
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("member", ["/abs/data.txt", "a/../../x.txt"])
def test_zip_absolute_or_nested_escape_is_refused(cli, tmp_path, lsun_src, member):
    directory, _ = lsun_src
    zip_path = make_zip(directory, tmp_path / "evil.zip", extra={member: b"x"})
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--zip", zip_path, "--lsun-dir", "u"), "refusing")
    assert not any(p.is_file() for p in (tmp_path / "u").rglob("*"))


def test_zip_with_symlink_member_is_refused(cli, tmp_path, lsun_src):
    directory, _ = lsun_src
    zip_path = make_zip(directory, tmp_path / "link.zip")
    with zipfile.ZipFile(zip_path, "a") as zf:
        info = zipfile.ZipInfo(f"{STEM}/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--zip", zip_path, "--lsun-dir", "u"), "symbolic link")


def test_bad_input_is_one_line(cli, tmp_path, lsun_src):
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--lmdb", tmp_path / "nope"), "no such")
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--zip", tmp_path / "nope.zip"), "no such")
    assert_one_line_error(cli("prepare", "lsun", "cathedral"), "cathedral")
    assert_one_line_error(cli("prepare", "lsun", CATEGORY), "--lmdb", "--zip", "--download")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--lmdb", tmp_path / "empty"), "data.mdb")
    (tmp_path / "notzip.zip").write_bytes(b"hello")
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--zip", tmp_path / "notzip.zip"), "not a readable zip")
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--lmdb", tmp_path / "src" / STEM, "--imsize", 4), "imsize")
    assert not (tmp_path / "data" / f"lsun-{CATEGORY}-64").exists()


def test_lmdb_that_is_not_lsun(cli, tmp_path):
    import lmdb

    env = lmdb.open(str(tmp_path / "other"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"config", b"{}")
    env.close()
    r = cli("prepare", "lsun", CATEGORY, "--lmdb", tmp_path / "other", "--out", "o")
    assert_one_line_error(r, "not an LSUN lmdb")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "data.mdb").write_bytes(b"\0" * 100)
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--lmdb", tmp_path / "garbage", "--out", "o"), "lmdb")
    assert not (tmp_path / "o").exists()  # the source is checked before anything is written


def test_all_entries_undecodable(cli, tmp_path):
    directory, _ = make_lsun_lmdb(tmp_path / "bad", n=3, corrupt=(0, 1, 2))
    r = cli("prepare", "lsun", CATEGORY, "--lmdb", directory, "--out", "o")
    assert_one_line_error(r, "no image could be decoded")
    assert not (tmp_path / "o").exists()  # nothing to resume: what the command made is gone
    r = cli("prepare", "lsun", CATEGORY, "--lmdb", directory, "--out", "o")
    assert_one_line_error(r, "no image could be decoded")  # the same failure, not 'resuming o: 0 of 3'
    assert "resuming" not in r.stdout


def test_a_folder_where_nothing_decodes_leaves_no_files_in_an_out_folder_that_was_there(cli, tmp_path):
    (tmp_path / "imgs").mkdir()
    for name in ("a.jpg", "b.png"):
        (tmp_path / "imgs" / name).write_bytes(b"not an image")
    (tmp_path / "mine").mkdir()
    r = cli("prepare", "folder", tmp_path / "imgs", "--out", "mine", "--imsize", 32, "--workers", 1)
    assert_one_line_error(r, "no image could be decoded")
    assert (tmp_path / "mine").is_dir() and list((tmp_path / "mine").iterdir()) == []
    with pytest.raises(SaganError, match="not a complete|no meta.json|not a prepared"):
        open_dataset(tmp_path / "mine")


def test_wrong_category_is_refused(cli, tmp_path, lsun_src):
    directory, _ = lsun_src
    other = directory.parent / "bridge_train_lmdb"
    directory.rename(other)
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--lmdb", other), "holds LSUN bridge train", "church_outdoor")
    zip_path = make_zip(other, tmp_path / "bridge_train_lmdb.zip")
    assert_one_line_error(cli("prepare", "lsun", CATEGORY, "--zip", zip_path), "bridge")
    assert_one_line_error(cli("prepare", "lsun", "bridge", "--split", "val", "--lmdb", other), "bridge train", "bridge val")


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_other_start_methods_give_the_same_bytes(cli, tmp_path, lsun_src, monkeypatch, method):
    """fork is used on Linux; macOS (and Linux with threads or torch loaded) get forkserver/spawn."""
    import multiprocessing

    from sagan_cli.data.prepare import pipeline as prepare

    directory, values = lsun_src
    monkeypatch.setattr(prepare, "_pool_context", lambda: multiprocessing.get_context(method))
    r = cli("prepare", "lsun", CATEGORY, "--lmdb", directory, "--imsize", 32, "--workers", 2, "--out", "o")
    assert r.code == 0, r.stderr
    assert "2 workers" in r.stdout
    np.testing.assert_array_equal(np.asarray(open_dataset(tmp_path / "o").images), reference(values, 32)[0])


def test_a_worker_that_dies_is_one_line_and_resumable(cli, tmp_path, lsun_src, monkeypatch):
    import prepare_helpers

    from sagan_cli.data.prepare import pipeline as prepare

    directory, values = lsun_src
    real = prepare.process_chunk
    monkeypatch.setattr(prepare, "process_chunk", prepare_helpers.die_in_worker)
    r = cli("prepare", "lsun", CATEGORY, "--lmdb", directory, "--imsize", 32, "--workers", 2, "--out", "o")
    assert_one_line_error(r, "worker process died", "re-run")
    with pytest.raises(SaganError):
        open_dataset(tmp_path / "o")
    monkeypatch.setattr(prepare, "process_chunk", real)
    r = cli("prepare", "lsun", CATEGORY, "--lmdb", directory, "--imsize", 32, "--workers", 2, "--out", "o")
    assert r.code == 0, r.stderr
    np.testing.assert_array_equal(np.asarray(open_dataset(tmp_path / "o").images), reference(values, 32)[0])


def test_categories_complete_and_prepare_cli_imports_stay_light():
    import os
    import subprocess
    import sys

    from conftest import REPO

    env = dict(os.environ, _SAGAN_COMPLETE="complete_bash", COMP_WORDS="sagan prepare lsun c", COMP_CWORD="3",
               PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "sagan_cli"], env=env, capture_output=True, text=True, timeout=60)
    assert set(out.stdout.split()) == {"church_outdoor", "classroom", "conference_room"}
    code = ("import sys, sagan_cli.cli.prepare; "
            "sys.exit(int(any(m in sys.modules for m in ('torch', 'numpy', 'PIL', 'lmdb'))))")
    assert subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO))).returncode == 0


def test_resume_position_skips_straight_to_the_next_key(tmp_path, lsun_src, monkeypatch):
    """A resumed LSUN run continues after the last key done (set_range), without walking the rest."""
    from sagan_cli.data.prepare import lsun

    directory, values = lsun_src
    source = lsun.LmdbSource(directory, CATEGORY, "train")
    keys = sorted(values)
    assert list(source.items(0)) == keys
    assert list(source.items(40)) == keys[40:]  # by count (no position recorded)
    monkeypatch.setattr(lsun, "_KEY_BATCH", 4)
    assert list(source.items(40, source.position(keys[39]))) == keys[40:]
    assert list(source.items(0, source.position(keys[-1]))) == []
