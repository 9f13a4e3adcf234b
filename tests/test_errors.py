"""Bad input to train and sample: one `error:` line, non-zero exit, no traceback, nothing written."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, make_images, run_sagan
from sagan_cli.data.dataset import save_dataset

TINY = ["--imsize", "32", "--g-conv-dim", "16", "--d-conv-dim", "16", "--z-dim", "32", "--device", "cpu", "--steps", "2", "--batch", "8"]


def _data_case(tmp_path, case):
    d = tmp_path / "bad"
    if case == "missing":
        return d
    if case == "file":
        d.write_text("x")
        return d
    d.mkdir()
    if case == "empty":
        return d
    save_dataset(d, make_images(16, 32))
    meta = json.loads((d / "meta.json").read_text())
    if case == "corrupt-meta":
        (d / "meta.json").write_text("{not json")
    elif case == "incomplete":
        (d / "meta.json").write_text(json.dumps(meta | {"complete": False}))
    elif case == "truncated-images":
        raw = (d / "images.npy").read_bytes()
        (d / "images.npy").write_bytes(raw[: len(raw) // 2])
    elif case == "no-images":
        (d / "images.npy").unlink()
    elif case == "wrong-size":
        save_dataset(d, make_images(16, 64))
    elif case == "count-mismatch":
        (d / "meta.json").write_text(json.dumps(meta | {"count": 99}))
    return d


@pytest.mark.parametrize(
    "case,fragment",
    [
        ("missing", "not found"),
        ("file", "got a file"),
        ("empty", "no meta.json"),
        ("corrupt-meta", "not a sagan dataset"),
        ("incomplete", "incomplete"),
        ("truncated-images", "corrupt or truncated"),
        ("no-images", "no images.npy"),
        ("wrong-size", "--imsize is 32"),
        ("count-mismatch", "does not match"),
    ],
)
def test_bad_data_directory(cli, tmp_path, case, fragment):
    data = _data_case(tmp_path, case)
    r = cli("train", *TINY, "--data", data)
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "a run directory was created"


def _ckpt_case(tmp_path, case, good):
    p = tmp_path / f"{case}.pt"
    if case == "text":
        p.write_text("hello, I am not a checkpoint\n")
    elif case == "truncated":
        raw = good.read_bytes()
        p.write_bytes(raw[: len(raw) // 3])
    elif case == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, p)
    elif case == "pickle":
        class Payload:  # would create a file if unpickled
            def __reduce__(self):
                return (open, (str(tmp_path / "PWNED"), "w"))

        p.write_bytes(pickle.dumps({"format": "sagan-checkpoint", "x": Payload()}))
    elif case == "torch-pickle":
        class Payload2:
            def __reduce__(self):
                return (open, (str(tmp_path / "PWNED"), "w"))

        torch.save({"format": "sagan-checkpoint", "x": Payload2()}, p)
    elif case == "directory":
        p.mkdir()
    return p


@pytest.fixture
def good_ckpt(cli, tiny_dataset, tmp_path):
    assert cli("train", *TINY, "--data", tiny_dataset, "--outdir", "good").code == 0
    return tmp_path / "good/00000-tiny-32/checkpoints/latest.pt"


@pytest.mark.parametrize(
    "case,fragment",
    [("text", "not a sagan checkpoint"), ("truncated", "truncated or corrupt"), ("foreign", "not a sagan checkpoint"),
     ("pickle", "checkpoint"), ("torch-pickle", "refused to load"), ("directory", "directory")],
)
@pytest.mark.parametrize("command", ["sample", "train"])
def test_bad_checkpoint(cli, tmp_path, good_ckpt, case, fragment, command):
    p = _ckpt_case(tmp_path, case, good_ckpt)
    args = ("sample", p, "--out", "x.png") if command == "sample" else ("train", "--resume", p, "--device", "cpu")
    r = cli(*args)
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "PWNED").exists(), "a pickle payload ran"
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--steps", "0"], "--steps"),
        (["--batch", "0"], "--batch"),
        (["--batch", "65"], "larger than the dataset"),
        (["--imsize", "48"], "--imsize"),
        (["--imsize", "abc"], "--imsize"),
        (["--device", "cuda"], "cuda"),
        (["--device", "cuda:3"], "cuda"),
        (["--device", "tpu"], "--device"),
        (["--g-attn", "64"], "--g-attn 64"),
        (["--g-attn", "x,y"], "--g-attn"),
        (["--attention", "fancy"], "--attention"),
        (["--lr-d", "-1"], "--lr-d"),
        (["--beta2", "1.5"], "--beta2"),
        (["--ema-decay", "1"], "--ema-decay"),
        (["--resume", "nope.pt"], "no such checkpoint"),
        (["--resume", "latest"], "no checkpoint found"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_train_options(cli, tiny_dataset, tmp_path, args, fragment):
    base = [a for a in TINY]
    r = cli("train", *base, "--data", tiny_dataset, *args)
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_no_dataset_anywhere(cli, tmp_path):
    assert_one_line_error(cli("train", *TINY), "sagan prepare synthetic --imsize 32")


def test_resume_refuses_changed_identity_and_finished_runs(cli, good_ckpt):
    assert_one_line_error(cli("train", "--resume", good_ckpt, "--batch", "4", "--steps", "9"), "--batch 4 differs")
    assert_one_line_error(cli("train", "--resume", good_ckpt, "--g-conv-dim", "32", "--steps", "9"), "--g-conv-dim")
    assert_one_line_error(cli("train", "--resume", good_ckpt), "already at step 2")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--out", "a.png", "--outdir", "b"], "conflict"),
        (["--interpolate", "4", "--outdir", "b"], "--interpolate"),
        (["--interpolate", "1"], "--interpolate"),
        (["--interpolate", "4", "--seeds", "3"], "at least two seeds"),
        (["--seeds", "9-1"], "--seeds"),
        (["--n", "0"], "--n"),
        (["--truncation", "0"], "--truncation"),
        (["--device", "cuda"], "cuda"),
        (["--out", "grid.jpg"], ".png"),
    ],
)
def test_bad_sample_options(cli, good_ckpt, args, fragment):
    assert_one_line_error(cli("sample", good_ckpt, *args), fragment)


def test_sample_without_any_run(cli):
    assert_one_line_error(cli("sample"), "no checkpoint found")
    assert_one_line_error(cli("sample", "missing.pt"), "not found")


def test_errors_are_one_line_in_a_real_subprocess(tmp_path):
    r = run_sagan("train", "--imsize", "32", "--device", "cpu", "--data", tmp_path / "nowhere", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    r = run_sagan("sample", "--n", "-3", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("args,fragment", [(["--seeds", "0-64"], "at most 64"), (["--out", "a.jpg"], ".png")])
def test_bad_attn_map_options(cli, good_ckpt, args, fragment):
    assert_one_line_error(cli("attn-map", good_ckpt, "--query", "1,1", *args), fragment)


def test_ctrl_c_outside_a_commands_own_handling_is_one_line_and_exit_130(cli, monkeypatch):
    import sagan_cli.sample

    def interrupted(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(sagan_cli.sample, "parse_seeds", interrupted)
    r = cli("sample", "--seeds", "1")
    assert r.code == 130
    assert_one_line_error(r, "interrupted")
