"""Console/TensorBoard logging and the divergence guard of `sagan train`."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
import torch
from rich.console import Console

from conftest import TINY, assert_one_line_error
from faults_helpers import poisoned_trainer
from sagan_cli.util.errors import SaganError
from sagan_cli.train.log import TrainLogger



def test_terminal_gets_a_progress_bar_and_files_get_every_record(tmp_path):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    logger = TrainLogger(tmp_path, total_steps=10, start_step=0, tensorboard=False, console=console)
    logger.log({"step": 5, "steps": 10, "d_loss": 1.5, "g_loss": 0.25, "img_per_s": 100.0, "gamma/g16": 0.01})
    logger.advance(6)
    logger.message("step 6: checkpoint → x.pt")
    logger.close()
    out = buf.getvalue()
    assert "train" in out and "d_loss 1.5" in out and "checkpoint" in out
    assert '"gamma/g16": 0.01' in (tmp_path / "metrics.jsonl").read_text()
    assert "γ g16 +0.010" in (tmp_path / "log.txt").read_text()


def test_the_first_log_step_says_how_long_the_rest_takes(tmp_path, monkeypatch):
    """Once, from the rate since the logger opened (start-up included): 5 steps in 10 s, 95 to go → 190 s."""
    import time as clock

    now = [1000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])
    buf = io.StringIO()
    logger = TrainLogger(tmp_path, total_steps=100, start_step=0, tensorboard=False, console=Console(file=buf, width=200))
    now[0] += 10
    logger.log({"step": 5, "steps": 100, "d_loss": 1.0})
    now[0] += 1000
    logger.log({"step": 10, "steps": 100, "d_loss": 1.0})
    logger.close()
    out = buf.getvalue()
    assert out.count("expected:") == 1, out
    assert "expected: about 3 min more for the remaining 95 steps at the rate so far (0.5 steps/s)" in out
    assert "expected: about 3 min" in (tmp_path / "log.txt").read_text()


@pytest.mark.parametrize("seconds, text", [(40, "40 s"), (600, "10 min"), (5 * 3600, "5.0 h"), (3 * 86400, "3.0 days")])
def test_durations_read_as_people_say_them(seconds, text):
    from sagan_cli.util.progress import duration

    assert duration(seconds) == text


def test_tensorboard_logs_when_installed_and_is_a_clear_error_when_not(cli, tiny_dataset, tmp_path):
    r = cli("train", *TINY, "--batch", "8", "--data", tiny_dataset, "--steps", "2", "--tensorboard")
    if importlib.util.find_spec("tensorboard") is None:
        assert_one_line_error(r, "pip install tensorboard")
    else:
        assert r.code == 0, r.stderr
        assert any((tmp_path / "runs/00000-tiny-32/tensorboard").iterdir())


def test_non_finite_loss_stops_the_run_and_never_checkpoints_it(tiny_dataset, tmp_path):
    # the third step produces NaN weights
    trainer, logger = poisoned_trainer(tmp_path, tiny_dataset, lambda t: next(t.D.parameters()).fill_(float("nan")))
    with pytest.raises(SaganError, match="non-finite .* at step 3") as exc:
        trainer.run(logger)
    logger.close()
    assert exc.value.exit_code == 3 and "step-0000002.pt" in str(exc.value)
    ckdir = Path(trainer.run_dir) / "checkpoints"
    assert sorted(p.name for p in ckdir.iterdir()) == ["latest.pt", "step-0000001.pt", "step-0000002.pt"]
    good = torch.load(ckdir / "latest.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in good["D"].values() if v.is_floating_point())


def test_a_resumed_run_drops_what_the_killed_run_logged_past_its_checkpoint(tmp_path):
    """metrics.jsonl after a resume from step 4: training records up to 4, the evaluation records of any step,
    no torn last line; then the resumed run's own records."""
    import json

    path = tmp_path / "metrics.jsonl"
    lines = [{"step": s, "d_loss": 1.0} for s in (2, 4, 6)] + [{"kind": "eval", "step": 6, "fid": 50.0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 8, "d_lo')  # killed mid-line
    logger = TrainLogger(tmp_path, total_steps=10, start_step=4, tensorboard=False, console=Console(file=io.StringIO()))
    logger.log({"step": 5, "steps": 10, "d_loss": 0.5})
    logger.close()
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r.get("kind"), r["step"]) for r in recs] == [(None, 2), (None, 4), ("eval", 6), (None, 5)]


def test_a_fresh_logger_leaves_an_intact_metrics_file_byte_for_byte(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"kind": "eval", "step": 1}\n')
    before = path.stat().st_ino
    TrainLogger(tmp_path, total_steps=3, start_step=1, tensorboard=False, console=Console(file=io.StringIO())).close()
    assert path.read_text() == '{"step": 1}\n{"kind": "eval", "step": 1}\n'
    assert path.stat().st_ino == before  # nothing to drop: not rewritten


def test_a_log_file_that_cannot_be_opened_is_one_line(tmp_path):
    (tmp_path / "log.txt").mkdir()  # a directory where the log should be
    with pytest.raises(SaganError, match=r"while appending to .*log\.txt; training stopped"):
        TrainLogger(tmp_path, total_steps=3, start_step=0, tensorboard=False, console=Console(file=io.StringIO()))
