"""`sagan prepare lsun --download` against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from conftest import assert_one_line_error
from prepare_helpers import CATEGORY, STEM, FileServer, make_lsun_lmdb, make_zip
from sagan_cli.data.dataset import open_dataset


@pytest.fixture
def zip_bytes(tmp_path):
    directory, _ = make_lsun_lmdb(tmp_path / "src", n=10)
    return make_zip(directory, tmp_path / f"{STEM}.zip").read_bytes()


def test_download_resumes_an_interrupted_transfer_and_prepares(cli, tmp_path, zip_bytes, monkeypatch):
    with FileServer(zip_bytes, f"{STEM}.zip") as server:
        monkeypatch.setenv("SAGAN_LSUN_URL", server.base)
        server.cut_next = True  # the first response stops half-way through
        r = cli("prepare", "lsun", CATEGORY, "--download", "--imsize", 32, "--workers", 1)
    assert r.code == 0, r.stderr
    half = len(zip_bytes) // 2
    assert server.ranges == [None, f"bytes={half}-"]
    assert (tmp_path / "data" / "lsun" / f"{STEM}.zip").read_bytes() == zip_bytes
    assert not (tmp_path / "data" / "lsun" / f"{STEM}.zip.part").exists()
    assert len(open_dataset(tmp_path / "data" / f"lsun-{CATEGORY}-32")) == 9
    # the same command again: nothing is downloaded or rebuilt
    r = cli("prepare", "lsun", CATEGORY, "--download", "--imsize", 32)
    assert r.code == 0 and "already prepared" in r.stdout


def test_download_continues_a_part_file_left_by_an_earlier_run(cli, tmp_path, zip_bytes, monkeypatch):
    lsun_dir = tmp_path / "data" / "lsun"
    lsun_dir.mkdir(parents=True)
    (lsun_dir / f"{STEM}.zip.part").write_bytes(zip_bytes[:1000])
    with FileServer(zip_bytes, f"{STEM}.zip") as server:
        monkeypatch.setenv("SAGAN_LSUN_URL", server.base)
        r = cli("prepare", "lsun", CATEGORY, "--download", "--imsize", 32, "--out", "o")
    assert r.code == 0, r.stderr
    assert server.ranges == ["bytes=1000-"]
    assert "resuming at" in r.stdout
    assert (lsun_dir / f"{STEM}.zip").read_bytes() == zip_bytes
    assert len(open_dataset(tmp_path / "o")) == 9


def test_unreachable_server_says_how_to_pass_a_file(cli, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SAGAN_LSUN_URL", f"http://127.0.0.1:{port}/lsun")
    r = cli("prepare", "lsun", CATEGORY, "--download")
    assert_one_line_error(r, "cannot download", f"--zip {STEM}.zip", "--lmdb")
    assert not (tmp_path / "data" / f"lsun-{CATEGORY}-64").exists()


def test_http_error_is_one_line(cli, tmp_path, zip_bytes, monkeypatch):
    with FileServer(zip_bytes, "other.zip") as server:
        monkeypatch.setenv("SAGAN_LSUN_URL", server.base)
        r = cli("prepare", "lsun", CATEGORY, "--download")
    assert_one_line_error(r, "HTTP 404")


def test_default_url_is_the_lsun_server(monkeypatch):
    from sagan_cli.data.prepare.lsun import url_for

    monkeypatch.delenv("SAGAN_LSUN_URL", raising=False)
    assert url_for("bedroom", "val") == "http://dl.yf.io/lsun/scenes/bedroom_val_lmdb.zip"
