"""One option vocabulary across the commands (docs/cli.md), and the renamed spellings kept for one release."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, TINY
from sagan_cli.cli.options import RENAMED, renamed
from sagan_cli.train.config import TrainConfig
from test_cli_completions import _complete


@pytest.fixture
def ckpt(cli, tiny_dataset, tmp_path):
    r = cli("train", *TINY, "--data", tiny_dataset, "--steps", "2", "--batch", "8", "--ema-start", "1", "--runs", "elsewhere")
    assert r.code == 0, r.stderr
    return tmp_path / "elsewhere/00000-tiny-32/checkpoints/latest.pt"


def test_docs_list_exactly_the_renamed_spellings():
    page = (REPO / "docs/cli.md").read_text().split("## Renamed spellings", 1)[1]
    rows = {(c, old, new.split("/")[-1]) for c, old, new in re.findall(r"^\| (\w[\w-]*) \| `([^`]+)` \| `([^`]+)` \|$", page, re.M)}
    assert rows == {(c, old, new) for c, table in RENAMED.items() for old, new in table.items()}


def test_rewrite_keeps_values_and_everything_after_a_double_dash():
    heard = []
    words = ["--n", "3", "--n=4", "--nrow", "2", "--", "--n"]
    assert renamed("sample", words, heard.append) == ["--num", "3", "--num=4", "--nrow", "2", "--", "--n"]
    assert len(heard) == 1 and "--n is now --num" in heard[0]
    assert renamed("attn-map", ["--outdir", "x"], heard.append) == ["--outdir", "x"]  # no table: untouched


def test_old_spellings_are_in_no_help_and_no_completion(cli):
    for command, table in RENAMED.items():
        helptext = cli(command, "--help").stdout
        offered = _complete(f"sagan {command} --")
        for old, new in table.items():
            assert re.search(rf"{re.escape(old)}\b(?!-)", helptext) is None, (command, old)
            assert old not in offered and new in offered, (command, old, offered)
    assert "--outdir" in cli("sample", "--help").stdout  # sample's --outdir stays: the per-image folder


def test_runs_root_is_one_option_in_train_sample_attn_map_and_evaluate(cli, ckpt, tmp_path):
    """A run trained under --runs elsewhere is found by the other commands with the same option."""
    r = cli("sample", "--runs", "elsewhere", "-n", "2", "--out", "s.png")
    assert r.code == 0, r.stderr
    assert "elsewhere" in r.stdout and (tmp_path / "s.png").exists()
    r = cli("attn-map", "--runs", "elsewhere", "--query", "3,3", "--out", "a.png")
    assert r.code == 0, r.stderr
    assert "elsewhere" in r.stdout
    r = cli("sample", "-n", "2")  # the default runs root holds nothing
    assert r.code != 0 and "no checkpoint found under runs/" in r.stderr


def test_seed_is_the_first_seed_in_sample(cli, ckpt, tmp_path):
    assert cli("sample", ckpt, "--seed", "5", "-n", "3", "--outdir", "a").code == 0
    assert cli("sample", ckpt, "--seeds", "5-7", "--outdir", "b").code == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["seed000005.png", "seed000006.png", "seed000007.png"]
    for name in names:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "a" / name)), np.asarray(Image.open(tmp_path / "b" / name)))


def test_old_spellings_still_work_with_a_warning(cli, tiny_dataset, tmp_path):
    r = cli("train", *TINY, "--data", tiny_dataset, "--steps", "1", "--batch", "8", "--outdir", "old", "--n-samples", "4")
    assert r.code == 0, r.stderr
    assert "--outdir is now --runs" in r.stderr and "--n-samples is now --num-samples" in r.stderr
    config = json.loads((tmp_path / "old/00000-tiny-32/config.json").read_text())
    assert config["train"]["num_samples"] == 4
    ckpt = tmp_path / "old/00000-tiny-32/checkpoints/latest.pt"
    r = cli("sample", ckpt, "--n", "3", "--outdir", "three")
    assert r.code == 0 and "--n is now --num" in r.stderr
    assert len(list((tmp_path / "three").iterdir())) == 3
    r = cli("evaluate", ckpt, "--num-gen", "1")  # rewritten, so the new option's own check answers
    assert r.code == 2 and "--num-gen is now --num" in r.stderr and "'-n' / '--num'" in r.stderr


def test_configs_written_before_the_rename_load():
    assert TrainConfig.from_dict({"n_samples": 9}).num_samples == 9
