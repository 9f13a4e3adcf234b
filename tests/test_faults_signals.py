"""Stopping a run: Ctrl-C/SIGTERM at awkward moments, and divergence (non-finite loss or state).

tests/test_train.py already checks SIGINT → exit 0 and SIGTERM → 143 after some checkpoints; these cover
a signal in the very first steps, a second Ctrl-C in the middle of the final checkpoint write, a Ctrl-C
that no command handles, and a run that diverges.
"""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error
from faults_helpers import (
    poisoned_trainer,
    DATA, RUN, TINY, all_finite, checkpoint_steps, freeze_mid_write, load, metric_records, outputs, popen_sagan,
    populate, temp_files, wait_until,
)
from sagan_cli.util.errors import SaganError

LONG = ("train", *TINY, "--data", DATA, "--steps", 100000, "--batch", 8, "--log-every", 1, "--sample-every", 1000)


def _first_step_logged(run: Path):
    return lambda: (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").stat().st_size > 0


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 0, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_in_the_first_steps_still_writes_a_checkpoint(tmp_path, tmp_path_factory, sig, code, word):
    populate(tmp_path, tmp_path_factory, run=False)
    proc = popen_sagan(*LONG, "--ckpt-every", 1000, cwd=tmp_path)  # no periodic checkpoint before the signal
    run = tmp_path / RUN
    wait_until(_first_step_logged(run), proc, what="the first step")
    proc.send_signal(sig)
    proc.wait(timeout=120)
    out, err = outputs(tmp_path)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    steps = checkpoint_steps(run / "checkpoints")
    step = steps["latest.pt"]
    assert step >= 1 and steps == {"latest.pt": step, f"step-{step:07d}.pt": step}
    assert f"{word} at step {step}: checkpoint {RUN}/checkpoints/step-{step:07d}.pt" in out
    assert f"--resume {RUN}/checkpoints/step-{step:07d}.pt" in out
    assert [r["step"] for r in metric_records(run)][-1] <= step
    assert temp_files(run / "checkpoints") == []


def test_a_second_ctrl_c_during_the_final_checkpoint_aborts_cleanly(tmp_path, tmp_path_factory):
    """The first Ctrl-C asks for a checkpoint; a second one, arriving while it is written, aborts at once:
    exit 130, one line, and no temporary or half-written file (torch.save must not swallow the interrupt)."""
    populate(tmp_path, tmp_path_factory, run=False)
    # wider nets: a ~30 MB checkpoint takes long enough to write that the one write is surely seen
    proc = popen_sagan(*LONG, "--ckpt-every", 1000, "--g-conv-dim", 64, "--d-conv-dim", 64, cwd=tmp_path)
    ckdir = tmp_path / RUN / "checkpoints"
    wait_until(_first_step_logged(tmp_path / RUN), proc, what="the first step")
    proc.send_signal(signal.SIGINT)
    freeze_mid_write(proc, ckdir)  # stopped inside the final checkpoint's write
    proc.send_signal(signal.SIGINT)  # delivered the moment it continues
    proc.send_signal(signal.SIGCONT)
    proc.wait(timeout=120)
    out, err = outputs(tmp_path)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["error: interrupted"], err
    assert temp_files(ckdir) == []
    checkpoint_steps(ckdir)  # whatever is there (a step file, if the interrupt came after its rename) loads


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ctrl_c_at_a_random_moment_of_start_up(tmp_path, tmp_path_factory, seed):
    """Before train's handler is installed a Ctrl-C is `error: interrupted` (130) with nothing written;
    after, it is a checkpoint and exit 0. Either way: one line, no traceback, no temporary file."""
    populate(tmp_path, tmp_path_factory, run=False)
    proc = popen_sagan(*LONG, "--ckpt-every", 1000, cwd=tmp_path)
    try:
        proc.wait(timeout=random.Random(seed).uniform(0.2, 6.0))
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    out, err = outputs(tmp_path)
    ckdir = tmp_path / RUN / "checkpoints"
    # 130, or death by SIGINT itself (-2, which a shell shows as 130 too): CPython ends that way when the
    # interrupt first surfaced inside code run by PyRun_* (as during `import torch`), even after sys.exit(130)
    if proc.returncode in (130, -signal.SIGINT):
        assert err.strip().splitlines() == ["error: interrupted"], err
        assert not ckdir.exists() or not any(ckdir.iterdir())
    else:
        assert proc.returncode == 0 and "Traceback" not in err, err
        assert checkpoint_steps(ckdir)["latest.pt"] >= 0 and "interrupted at step" in out
        assert temp_files(ckdir) == []


def test_ctrl_c_outside_a_commands_own_handling_is_one_line_and_exit_130(cli, monkeypatch):
    import sagan_cli.inspect.sample

    def interrupted(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr(sagan_cli.inspect.sample, "parse_seeds", interrupted)
    r = cli("sample", "--seeds", "1")
    assert r.code == 130
    assert_one_line_error(r, "interrupted")


# ------------------------------------------------------------------ divergence
def test_a_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint(cli, tmp_path, tmp_path_factory):
    """--lr-g 1e30: step 1 is still finite (γ ≈ 1e30), step 2 is not. Induced from outside, no patching."""
    populate(tmp_path, tmp_path_factory, run=False)
    ckdir = tmp_path / RUN / "checkpoints"
    good = f"{RUN}/checkpoints/step-0000001.pt"
    r = cli("train", *TINY, "--data", DATA, "--steps", 10, "--batch", 8, "--lr-g", "1e30", "--ckpt-every", 1,
            "--log-every", 1, "--sample-every", 1000)
    assert_one_line_error(r, "training diverged: non-finite loss or weights at step 2", f"last good checkpoint: {good}")
    assert r.code == 3
    assert checkpoint_steps(ckdir) == {"latest.pt": 1, "step-0000001.pt": 1}
    assert all_finite(load(ckdir / "latest.pt"))
    assert [rec["step"] for rec in metric_records(tmp_path / RUN)] == [1]  # the broken step is not logged either
    r = cli("train", "--resume", "latest", "--steps", 10, "--device", "cpu")  # it diverges again, deterministically
    assert_one_line_error(r, "at step 2")
    assert checkpoint_steps(ckdir) == {"latest.pt": 1, "step-0000001.pt": 1} and temp_files(ckdir) == []
    assert cli("sample", "-n", 4, "--out", "s.png", "--device", "cpu").code == 0  # the kept checkpoint is usable


def _poison_g_bn_running_var(trainer):
    bn = next(m for m in trainer.G.modules() if isinstance(m, torch.nn.BatchNorm2d))
    bn.running_var[0] = float("inf")


def _poison_g_ema(trainer):
    next(trainer.ema.model.parameters()).data[0] = float("nan")


def _poison_adam_state(trainer):
    state = next(iter(trainer.opt_D.state.values()))
    state["exp_avg_sq"].view(-1)[0] = float("inf")


@pytest.mark.parametrize("poison,where", [
    (_poison_g_bn_running_var, "G."), (_poison_g_ema, "G_ema."), (_poison_adam_state, "opt_D.state."),
])
def test_a_checkpoint_holding_nan_or_inf_is_never_written(tmp_path, tiny_dataset, poison, where):
    """The loop checks parameters and losses; the checkpoint writer checks everything it is given (buffers,
    EMA weights, optimiser moments), so a non-finite value there cannot reach a checkpoint either."""
    # poisoned after the third step's update, before its checkpoint
    trainer, logger = poisoned_trainer(tmp_path, tiny_dataset, poison, at_step=2, ema_start=0)
    with pytest.raises(SaganError) as exc:
        trainer.run(logger)
    logger.close()
    ckdir = Path(trainer.run_dir) / "checkpoints"
    assert exc.value.exit_code == 3
    msg = str(exc.value)
    assert msg.startswith(f"training diverged: {where}") and "not finite at step 3" in msg, msg
    assert f"last good checkpoint: {ckdir / 'step-0000002.pt'}" in msg
    assert checkpoint_steps(ckdir) == {"latest.pt": 2, "step-0000001.pt": 1, "step-0000002.pt": 2}
    assert all(all_finite(load(p)) for p in ckdir.iterdir())
    assert temp_files(ckdir) == []
