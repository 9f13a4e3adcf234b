"""`sagan train`: run directory contents, resume, bit-exact continuation, signals, EMA."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, TINY, assert_one_line_error
from faults_helpers import wait_until



def train(cli, data, *extra):
    return cli("train", *TINY, "--data", data, *extra)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_tiny_run_writes_config_metrics_samples_and_checkpoint(cli, tiny_dataset, tmp_path):
    r = train(cli, tiny_dataset, "--steps", "20", "--batch", "16", "--log-every", "5", "--sample-every", "10", "--ckpt-every", "10")
    assert r.code == 0, r.stderr
    run = tmp_path / "runs" / "00000-tiny-32"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["imsize"] == 32 and config["train"]["batch"] == 16
    assert config["data"]["fingerprint"].startswith("sha256:")
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in records] == [5, 10, 15, 20]
    for rec in records:
        for key in ("d_loss", "g_loss", "d_real", "d_fake", "img_per_s", "gamma/g8", "gamma/g16", "gamma/d8", "gamma/d4"):
            assert np.isfinite(rec[key]), key
    assert records[-1]["images_seen"] == 20 * 16
    for step in (10, 20):
        png = Image.open(run / "samples" / f"step-{step:07d}.png")
        assert png.size == (8 * 34 + 2, 8 * 34 + 2)  # 64 images, 8 per row, 2-px gutters
        assert (run / "checkpoints" / f"step-{step:07d}.pt").exists()
    ckpt = load(run / "checkpoints" / "latest.pt")
    assert ckpt["format"] == "sagan-checkpoint" and ckpt["step"] == 20 and ckpt["images_seen"] == 320
    for key in ("G", "D", "G_ema", "opt_G", "opt_D", "scaler", "rng", "sampler", "model_config", "train_config",
                "data", "tool_version", "format_version", "fixed_z"):
        assert key in ckpt, key
    assert "step 20/20" in r.stdout and "checkpoint" in r.stdout
    assert (run / "log.txt").read_text().count("step 20") >= 1


def test_defaults_find_newest_dataset_and_name_the_run_after_it(cli, tiny_dataset, tmp_path):
    r = cli("train", *TINY, "--steps", "2", "--batch", "8")
    assert r.code == 0, r.stderr
    assert "using dataset data/tiny-32" in r.stdout
    assert (tmp_path / "runs" / "00000-tiny-32" / "checkpoints" / "step-0000002.pt").exists()
    r = cli("train", *TINY, "--steps", "2", "--batch", "8", "--name", "second run")
    assert (tmp_path / "runs" / "00001-second-run" / "checkpoints" / "latest.pt").exists()


def test_resume_latest_continues_at_the_next_step(cli, tiny_dataset, tmp_path):
    assert train(cli, tiny_dataset, "--steps", "20", "--batch", "16", "--log-every", "1").code == 0
    r = cli("train", "--resume", "latest", "--steps", "30", "--log-every", "1", "--device", "cpu")
    assert r.code == 0, r.stderr
    assert "from step 20" in r.stdout
    run = tmp_path / "runs" / "00000-tiny-32"
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))
    assert load(run / "checkpoints" / "latest.pt")["step"] == 30
    assert len(list((tmp_path / "runs").iterdir())) == 1, "resume must not open a new run directory"


def _weights(ckpt):
    return {f"{net}.{k}": v for net in ("G", "D", "G_ema") for k, v in ckpt[net].items()} | {
        f"opt_G.{k}": v for k, v in _flat(ckpt["opt_G"]["state"]).items()
    }


def _flat(state, prefix=""):
    out = {}
    for k, v in state.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, torch.Tensor):
            out[f"{prefix}{k}"] = v
    return out


def test_n_plus_resume_plus_n_steps_is_bit_identical_to_2n_steps(cli, tiny_dataset, tmp_path):
    common = ("--batch", "8", "--ema-start", "2", "--log-every", "3", "--sample-every", "100")
    # 64 images / batch 8 = 8 batches per epoch: 12 steps cross an epoch boundary.
    assert train(cli, tiny_dataset, "--steps", "12", "--runs", "straight", *common).code == 0
    assert train(cli, tiny_dataset, "--steps", "6", "--runs", "resumed", *common).code == 0
    r = cli("train", "--resume", "latest", "--runs", "resumed", "--steps", "12", "--device", "cpu")
    assert r.code == 0, r.stderr
    a = load(tmp_path / "straight/00000-tiny-32/checkpoints/latest.pt")
    b = load(tmp_path / "resumed/00000-tiny-32/checkpoints/latest.pt")
    assert a["step"] == b["step"] == 12 and a["sampler"] == b["sampler"] == {"seed": 0, "epoch": 1, "position": 4}
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and len(wa) > 50
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs after resume"
    assert not torch.equal(a["G"][next(iter(a["G"]))], a["G_ema"][next(iter(a["G"]))]), "EMA never averaged"


def test_keep_ckpts_prunes_old_step_files_but_keeps_latest(cli, tiny_dataset, tmp_path):
    assert train(cli, tiny_dataset, "--steps", "5", "--batch", "8", "--ckpt-every", "1", "--keep-ckpts", "2").code == 0
    ckdir = tmp_path / "runs/00000-tiny-32/checkpoints"
    assert sorted(p.name for p in ckdir.iterdir()) == ["latest.pt", "step-0000004.pt", "step-0000005.pt"]
    assert load(ckdir / "latest.pt")["step"] == 5


def test_no_ema_and_official_attention_train_and_sample(cli, tiny_dataset, tmp_path):
    r = train(cli, tiny_dataset, "--steps", "2", "--batch", "8", "--no-ema", "--attention", "official",
              "--g-attn", "16", "--d-attn", "none")
    assert r.code == 0, r.stderr
    ckpt = load(tmp_path / "runs/00000-tiny-32/checkpoints/latest.pt")
    assert ckpt["G_ema"] is None and ckpt["model_config"]["attention"] == "official"
    assert ckpt["model_config"]["g_attn"] == [16] and ckpt["model_config"]["d_attn"] == []
    r = cli("sample", "-n", "4", "--no-ema", "--out", "s.png")
    assert r.code == 0, r.stderr
    r = cli("sample", "-n", "4")
    assert r.code != 0 and "--no-ema" in r.stderr


def test_ema_tracks_g_before_start_then_averages():
    from sagan_cli.train.ema import EMA

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(net, decay=0.5, start=1)
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[1].running_mean.fill_(4.0)
    ema.update(1)  # before/at start: exact copy
    assert torch.equal(ema.model[0].weight, net[0].weight)
    with torch.no_grad():
        net[0].weight.fill_(3.0)
        net[1].running_mean.fill_(0.0)
    ema.update(2)  # averaging: 0.5*1 + 0.5*3
    assert torch.allclose(ema.model[0].weight, torch.full((2, 2), 2.0))
    assert torch.allclose(ema.model[1].running_mean, torch.full((2,), 2.0))
    assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())


def _logged_step(path) -> int:
    """The highest step among the whole lines of a metrics.jsonl being written (0 before any)."""
    text = path.read_text() if path.exists() else ""
    return max((json.loads(line)["step"] for line in text[:text.rfind("\n") + 1].splitlines()), default=0)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 0), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_exits_cleanly(tiny_dataset, tmp_path, sig, code):
    import os

    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagan_cli", "train", *TINY, "--data", str(tiny_dataset), "--steps", "100000",
         "--batch", "8", "--ckpt-every", "3", "--log-every", "1"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    run = tmp_path / "runs/00000-tiny-32"
    ckdir = run / "checkpoints"
    # step 4's record is written after step 3's checkpoint and stop check: a signal from now on stops past
    # step 3 (a fixed sleep could land between that checkpoint and that check, where nothing new is saved)
    wait_until(lambda: _logged_step(run / "metrics.jsonl") >= 4, proc, timeout=120, what="step 4's record")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    latest = load(ckdir / "latest.pt")
    assert latest["step"] > 3, "the stop checkpoint was not written"
    assert f"step-{latest['step']:07d}.pt" in os.listdir(ckdir)
    assert "--resume" in out
    assert not [p for p in os.listdir(ckdir) if p.endswith(".tmp")], "temporary file left behind"


def test_atomic_writes_get_normal_permissions_and_leave_no_temp_on_failure(tmp_path):
    import os

    from sagan_cli.util.fsutil import atomic_open

    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "f.bin") as fh:
            fh.write(b"ok")
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644
    with pytest.raises(OSError):
        with atomic_open(tmp_path / "f.bin") as fh:
            fh.write(b"half")
            raise OSError(28, "No space left on device")
    assert (tmp_path / "f.bin").read_bytes() == b"ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_latest_link_interrupted_before_its_rename_leaves_no_temporary(tmp_path, monkeypatch):
    """latest.pt is a hard link renamed into place; Ctrl-C between the link and the rename must not
    leave `.latest.pt.link.tmp` behind, and the old latest.pt stays."""
    import os

    from sagan_cli.util import fsutil

    (tmp_path / "step-2.pt").write_bytes(b"two")
    (tmp_path / "latest.pt").write_bytes(b"one")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    real = os.replace
    monkeypatch.setattr(fsutil.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fsutil.atomic_link_or_copy(tmp_path / "step-2.pt", tmp_path / "latest.pt")
    monkeypatch.setattr(fsutil.os, "replace", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt", "step-2.pt"]
    assert (tmp_path / "latest.pt").read_bytes() == b"one"
    fsutil.atomic_link_or_copy(tmp_path / "step-2.pt", tmp_path / "latest.pt")
    assert (tmp_path / "latest.pt").read_bytes() == b"two"


def test_resume_names_missing_rng_and_sampler_entries():
    """A hand-trimmed checkpoint whose rng or sampler lacks what the Trainer restores is refused in one line
    before anything is restored (not a KeyError half-way through)."""
    from sagan_cli.util.errors import SaganError
    from sagan_cli.train.checkpoint import check_resumable

    full = {"train_config": {}, "D": {}, "opt_G": {}, "opt_D": {}, "rng": {"torch": torch.zeros(1)},
            "sampler": {"seed": 0, "epoch": 1, "position": 8}, "data": {}}
    check_resumable(full, "ok.pt")
    bad = full | {"rng": {}, "sampler": {"seed": 0, "position": "8"}}
    with pytest.raises(SaganError, match=r"^bad\.pt holds no training state \(rng\.torch, sampler\.epoch, "
                                         r"sampler\.position missing\); it can be sampled from but not resumed$"):
        check_resumable(bad, "bad.pt")


def test_resume_with_a_damaged_rng_state_is_one_line(tiny_dataset, tmp_path, cli):
    r = cli("train", "--imsize", "32", "--g-conv-dim", "16", "--d-conv-dim", "16", "--z-dim", "32", "--device", "cpu",
            "--data", tiny_dataset, "--steps", "1", "--batch", "8", "--runs", tmp_path / "runs")
    assert r.code == 0, r.stderr
    [ck] = (tmp_path / "runs").glob("*/checkpoints/latest.pt")
    state = torch.load(ck, weights_only=True)
    state["rng"]["torch"] = torch.zeros(3)  # float, wrong size: not a generator state
    torch.save(state, tmp_path / "bad-rng.pt")
    r = cli("train", "--resume", tmp_path / "bad-rng.pt", "--steps", "2", "--device", "cpu")
    assert_one_line_error(r, "random-generator state cannot be restored")


def test_the_image_size_comes_from_data_when_imsize_is_not_given(cli, tiny_dataset, tmp_path):
    i = TINY.index("--imsize")
    no_imsize = TINY[:i] + TINY[i + 2 :]
    r = cli("train", *no_imsize, "--data", tiny_dataset, "--steps", "1", "--batch", "8")
    assert r.code == 0, r.stderr
    assert json.loads((tmp_path / "runs/00000-tiny-32/config.json").read_text())["model"]["imsize"] == 32
    # given, it must match: a 32-px dataset is not silently trained at 64 px
    r = cli("train", *no_imsize, "--imsize", "64", "--data", tiny_dataset, "--steps", "1", "--batch", "8")
    assert_one_line_error(r, "holds 32px images but --imsize is 64")
