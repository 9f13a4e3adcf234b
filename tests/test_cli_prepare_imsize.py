"""One list of image sizes for prepare, train and sample (util.images.IMSIZES): prepare refuses any other
size before doing any work, both helps state the list, and --imsize completes to it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, assert_one_line_error
from sagan_cli.util.images import IMSIZES, IMSIZES_TEXT


def _help_text(cli, *command) -> str:
    r = cli(*command, "--help")
    assert r.code == 0, r.stderr
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.stdout).split())  # Rich's panel borders and wrapping removed


@pytest.mark.parametrize("args", [
    ("synthetic", "--imsize", 48, "--count", 3),
    ("folder", "imgs", "--imsize", 16),
    ("lsun", "church_outdoor", "--imsize", 1024, "--lmdb", "nowhere"),
])
def test_prepare_refuses_a_size_train_would_refuse_before_any_work(cli, tmp_path, args):
    (tmp_path / "imgs").mkdir()
    r = cli("prepare", *args)
    assert_one_line_error(r, f"--imsize must be one of 32, 64, 128, 256, 512, got {args[args.index('--imsize') + 1]}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # no data/, no dataset directory


def test_every_size_of_the_list_is_prepared(cli, tmp_path):
    from sagan_cli.data.dataset import open_dataset

    for size in IMSIZES:
        r = cli("prepare", "synthetic", "--imsize", size, "--count", 2, "--workers", 1, "--out", f"s{size}")
        assert r.code == 0, r.stderr
        assert open_dataset(tmp_path / f"s{size}", size).images.shape == (2, 3, size, size)


@pytest.mark.parametrize("source", ["lsun", "folder", "synthetic"])
def test_prepare_help_states_the_sizes(cli, source):
    assert IMSIZES_TEXT == "32, 64, 128, 256 or 512"
    assert f"in pixels: {IMSIZES_TEXT}" in _help_text(cli, "prepare", source)


def test_train_help_states_the_same_sizes(cli):
    assert IMSIZES_TEXT in _help_text(cli, "train")


def test_prepare_imsize_completes_to_the_sizes():
    words = "sagan prepare synthetic --imsize "
    env = dict(os.environ, _SAGAN_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD="4", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "sagan_cli"], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == [str(s) for s in IMSIZES]
