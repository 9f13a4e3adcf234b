"""Labelled sources of `sagan prepare`: folder --labels subdirs, several LSUN categories, cifar10."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from conftest import assert_one_line_error
from labels_helpers import CIFAR_CLASSES, interrupt_at_chunk, make_cifar_binary, make_cifar_pickle, make_class_folders
from prepare_helpers import FileServer, make_lsun_lmdb, make_zip
from sagan_cli.data.dataset import LABELS, open_dataset
from sagan_cli.data.prepare import cifar


# ---------------------------------------------------------------- folder --labels subdirs
def test_folder_subdirs_one_class_per_subfolder_in_sorted_order(cli, tmp_path):
    make_class_folders(tmp_path / "train", {"n02": 3, "n01": 2, "n03": 4})
    (tmp_path / "train" / "n03" / "deeper").mkdir()
    make_class_folders(tmp_path / "train" / "n03" / "deeper", {"x": 1})  # deeper down: still class n03
    (tmp_path / "train" / "empty").mkdir()
    r = cli("prepare", "folder", "train", "--labels", "subdirs", "--imsize", 32, "--workers", 2, "--out", "ds")
    assert r.code == 0, r.stderr
    assert "1 subfolder without images, not a class: empty" in r.stdout
    assert "3 classes (images per class in meta.json): n01 2, n02 3, n03 5" in r.stdout
    ds = open_dataset(tmp_path / "ds")
    assert ds.classes == ["n01", "n02", "n03"] and ds.meta["class_counts"] == [2, 3, 5]
    np.testing.assert_array_equal(ds.labels, [0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
    # each image's label is its folder's: the folders' colours are red, green, blue (make_class_folders)
    colour = ds.images.reshape(len(ds), 3, -1).mean(-1).argmax(1)
    np.testing.assert_array_equal(colour, [1, 1, 0, 0, 0, 2, 2, 2, 2, 0])  # n02 made first: red; deeper/x red
    assert ds.meta["labels"] == "subdirs" and ds.meta["request"]["labels"] == "subdirs"
    # without --labels the same folder is one unlabelled dataset, as before
    assert cli("prepare", "folder", "train", "--imsize", 32, "--out", "plain").code == 0
    plain = open_dataset(tmp_path / "plain")
    assert plain.labels is None and len(plain) == 10 and not (tmp_path / "plain" / LABELS).exists()


def test_folder_subdirs_skips_keep_labels_aligned(cli, tmp_path):
    make_class_folders(tmp_path / "f", {"a": 2, "b": 2})
    (tmp_path / "f" / "a" / "000.png").write_bytes(b"not an image")
    r = cli("prepare", "folder", "f", "--labels", "subdirs", "--imsize", 32, "--out", "ds")
    assert r.code == 0, r.stderr
    ds = open_dataset(tmp_path / "ds")
    np.testing.assert_array_equal(ds.labels, [0, 1, 1])
    assert ds.meta["class_counts"] == [1, 2] and ds.meta["skipped"][0]["key"] == "a/000.png"


def test_folder_subdirs_refuses_top_level_images_and_too_few_classes(cli, tmp_path):
    make_class_folders(tmp_path / "f", {"a": 2, "b": 1}, top=3)
    r = cli("prepare", "folder", "f", "--labels", "subdirs", "--out", "ds")
    assert_one_line_error(r, "f has 3 images at its top level (first: top0.png)", "move or remove them")
    assert not (tmp_path / "ds").exists()
    make_class_folders(tmp_path / "one", {"only": 2})
    r = cli("prepare", "folder", "one", "--labels", "subdirs")
    assert_one_line_error(r, "at least 2 class subfolders", "has 1 (only)")
    r = cli("prepare", "folder", "one", "--labels", "folders")
    assert_one_line_error(r, "'--labels'")


# ---------------------------------------------------------------- several LSUN categories
@pytest.fixture
def two_lmdbs(tmp_path):
    church, _ = make_lsun_lmdb(tmp_path / "src", n=6, corrupt=(2,))
    bridge = church.parent / "bridge_train_lmdb"
    shutil.copytree(church, bridge)
    return church, bridge


def test_several_lsun_categories_make_one_labelled_dataset(cli, tmp_path, two_lmdbs):
    church, bridge = two_lmdbs
    r = cli("prepare", "lsun", "church_outdoor", "bridge", "--lmdb", church, "--lmdb", bridge, "--imsize", 32,
            "--workers", 2)
    assert r.code == 0, r.stderr
    assert "2 classes (images per class in meta.json): church_outdoor 5, bridge 5" in r.stdout
    ds = open_dataset(tmp_path / "data" / "lsun-church_outdoor+bridge-32")
    assert ds.classes == ["church_outdoor", "bridge"] and ds.meta["categories"] == ["church_outdoor", "bridge"]
    np.testing.assert_array_equal(ds.labels, [0] * 5 + [1] * 5)
    np.testing.assert_array_equal(ds.images[:5], ds.images[5:])  # the same pictures in both (a copy)
    assert [s["key"].split("/")[0] for s in ds.meta["skipped"]] == ["church_outdoor", "bridge"]
    # one folder holding both lmdbs works too, and gives the same dataset
    r = cli("prepare", "lsun", "church_outdoor", "bridge", "--lmdb", church.parent, "--imsize", 32, "--out", "o")
    assert r.code == 0, r.stderr
    assert open_dataset(tmp_path / "o").fingerprint == ds.fingerprint
    # one category stays unlabelled, as before
    r = cli("prepare", "lsun", "church_outdoor", "--lmdb", church, "--imsize", 32, "--out", "one")
    assert r.code == 0 and open_dataset(tmp_path / "one").labels is None
    assert open_dataset(tmp_path / "one").meta["category"] == "church_outdoor"


def test_several_lsun_categories_from_zips_resume_in_the_second_category(cli, tmp_path, two_lmdbs, monkeypatch):
    from sagan_cli.data.prepare import pipeline

    church, bridge = two_lmdbs
    zips = [make_zip(church, tmp_path / "church_outdoor_train_lmdb.zip"), make_zip(bridge, tmp_path / "bridge_train_lmdb.zip")]
    args = ("prepare", "lsun", "church_outdoor", "bridge", "--zip", zips[0], "--zip", zips[1], "--imsize", 32,
            "--workers", 1, "--lsun-dir", "unpacked")
    monkeypatch.setattr(pipeline, "COMMIT_EVERY_S", 0.0)
    from sagan_cli.data.prepare.lsun import LmdbSource

    monkeypatch.setattr(LmdbSource, "chunk_size", 4)  # the second chunk holds both categories
    real = interrupt_at_chunk(monkeypatch, 3)
    r = cli(*args, "--out", "ds")
    assert_one_line_error(r, "interrupted after 7 of 12")  # 8 of 12 entries read, one of them undecodable
    monkeypatch.setattr(pipeline, "process_chunk", real)
    r = cli(*args, "--out", "ds")
    assert r.code == 0 and "resumed at 7" in r.stdout, r.stdout + r.stderr
    assert cli(*args, "--out", "whole").code == 0
    a, b = open_dataset(tmp_path / "ds"), open_dataset(tmp_path / "whole")
    np.testing.assert_array_equal(a.labels, [0] * 5 + [1] * 5)
    assert a.fingerprint == b.fingerprint


def test_lsun_categories_bad_input(cli, tmp_path, two_lmdbs):
    church, bridge = two_lmdbs
    r = cli("prepare", "lsun", "bridge", "bridge", "--lmdb", church.parent)
    assert_one_line_error(r, "category bridge is given twice")
    r = cli("prepare", "lsun", "church_outdoor", "bridge", "tower", "--lmdb", church, "--lmdb", bridge)
    assert_one_line_error(r, "2 --lmdb for 3 categories", "one --lmdb per category")
    r = cli("prepare", "lsun", "bridge", "church_outdoor", "--lmdb", church, "--lmdb", bridge)
    assert_one_line_error(r, "holds LSUN church_outdoor train, but the command asks for bridge train")
    r = cli("prepare", "lsun", "church_outdoor", "tower", "--lmdb", church.parent)
    assert_one_line_error(r, "tower_train_lmdb: no such file or directory")


# ---------------------------------------------------------------- cifar10
def test_cifar10_binary_archive_train_and_test_splits(cli, tmp_path):
    want = make_cifar_binary(tmp_path / "cifar-10-binary.tar.gz")
    r = cli("prepare", "cifar10", "--archive", "cifar-10-binary.tar.gz", "--workers", 2, "--preview")
    assert r.code == 0, r.stderr
    assert "prepared 15 images of 32px in data/cifar10-train-32" in r.stdout
    ds = open_dataset(tmp_path / "data" / "cifar10-train-32")
    np.testing.assert_array_equal(ds.images, want["train"][1])  # the bytes as they are: no resize
    np.testing.assert_array_equal(ds.labels, want["train"][0])
    assert ds.classes == CIFAR_CLASSES and ds.num_classes == 10
    assert ds.meta["class_counts"] == np.bincount(want["train"][0], minlength=10).tolist()
    assert ds.meta["split"] == "train" and ds.meta["archive_official"] is False
    assert ds.meta["archive_md5"] == hashlib.md5((tmp_path / "cifar-10-binary.tar.gz").read_bytes()).hexdigest()
    assert (tmp_path / "data" / "cifar10-train-32" / "preview.png").exists()
    r = cli("prepare", "cifar10", "--archive", "cifar-10-binary.tar.gz", "--split", "test", "--max-images", 3)
    assert r.code == 0, r.stderr
    test = open_dataset(tmp_path / "data" / "cifar10-test-32")
    np.testing.assert_array_equal(test.images, want["test"][1][:3])
    np.testing.assert_array_equal(test.labels, want["test"][0][:3])


def test_cifar10_pickle_archive_is_refused_by_name_and_never_read(cli, tmp_path, monkeypatch):
    import pickle

    def no_unpickling(*a, **kw):
        raise AssertionError("unpickled")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    make_cifar_pickle(tmp_path / "cifar-10-python.tar.gz")
    r = cli("prepare", "cifar10", "--archive", "cifar-10-python.tar.gz")
    assert_one_line_error(r, "is the Python (pickle) version of CIFAR-10", "never unpickles", "cifar-10-binary.tar.gz")
    shutil.copyfile(tmp_path / "cifar-10-python.tar.gz", tmp_path / "renamed.tar.gz")  # known by its members too
    r = cli("prepare", "cifar10", "--archive", "renamed.tar.gz")
    assert_one_line_error(r, "renamed.tar.gz is the Python (pickle) version")
    assert not (tmp_path / "data" / "cifar10-train-32").exists()


def test_cifar10_bad_archives_are_one_line(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(cli("prepare", "cifar10", "--archive", "notes.txt"), "not a readable tar archive")
    assert_one_line_error(cli("prepare", "cifar10", "--archive", "nope.tar.gz"), "no such file")
    assert_one_line_error(cli("prepare", "cifar10"), "no source for CIFAR-10", "--archive", "--download")
    assert_one_line_error(cli("prepare", "cifar10", "--split", "val"), "'--split'")
    make_cifar_binary(tmp_path / "nine.tar.gz", meta="\n".join(CIFAR_CLASSES[:9]))
    assert_one_line_error(cli("prepare", "cifar10", "--archive", "nine.tar.gz"), "names 9 classes, not CIFAR-10's 10")
    assert_one_line_error(cli("prepare", "cifar10", "--archive", "nine.tar.gz", "--download"),
                          "--archive and --download conflict")


def test_cifar10_download_checks_the_published_md5(cli, tmp_path, monkeypatch):
    make_cifar_binary(tmp_path / "src.tar.gz")
    data = (tmp_path / "src.tar.gz").read_bytes()
    with FileServer(data, "cifar-10-binary.tar.gz") as server:
        monkeypatch.setenv(cifar.URL_ENV, f"{server.base}/cifar-10-binary.tar.gz")
        r = cli("prepare", "cifar10", "--download")  # the real MD5: this archive is not the official one
        assert_one_line_error(r, "has MD5", f"not the published {cifar.MD5}", "deleted")
        assert not (tmp_path / "data" / "cifar10" / "cifar-10-binary.tar.gz").exists()
        monkeypatch.setattr(cifar, "MD5", hashlib.md5(data).hexdigest())
        r = cli("prepare", "cifar10", "--download", "--max-images", 4)
    assert r.code == 0, r.stderr
    assert (tmp_path / "data" / "cifar10" / "cifar-10-binary.tar.gz").read_bytes() == data
    ds = open_dataset(tmp_path / "data" / "cifar10-train-32")
    assert len(ds) == 4 and ds.meta["archive_official"] is True
