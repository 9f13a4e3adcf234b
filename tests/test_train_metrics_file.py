"""metrics.jsonl shared by `train` and `evaluate`: torn lines, trimming on resume, and the lock between them."""

from __future__ import annotations

import errno
import json
import threading
import time

import pytest

from sagan_cli.train import metrics_file
from sagan_cli.train.metrics_file import append_record, trim_for_resume


def _recs(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_evaluation_after_a_torn_record_starts_on_its_own_line_and_survives_the_resume(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 2}\n{"step": 4}\n{"step": 5, "d_lo')  # disk full mid-record
    append_record(path, {"kind": "eval", "step": 4, "fid": 12.5})
    lines = path.read_text().splitlines()
    assert lines[-1] == '{"kind": "eval", "step": 4, "fid": 12.5}' and lines[-2] == '{"step": 5, "d_lo'
    assert trim_for_resume(path, 4) == 1
    assert _recs(path) == [{"step": 2}, {"step": 4}, {"kind": "eval", "step": 4, "fid": 12.5}]


def test_trimming_the_end_is_in_place_and_needs_no_free_space(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 9)))
    inode = path.stat().st_ino

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("sagan_cli.util.fsutil.atomic_write", no_space)  # a copy would fail: none is made
    assert trim_for_resume(path, 5) == 3
    assert [r["step"] for r in _recs(path)] == [1, 2, 3, 4, 5] and path.stat().st_ino == inode


def test_nothing_to_drop_leaves_the_file_alone(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"kind": "eval", "step": 1}\n')
    before = path.stat()
    assert trim_for_resume(path, 1) == 0
    assert path.read_text() == '{"step": 1}\n{"kind": "eval", "step": 1}\n'
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert trim_for_resume(tmp_path / "missing.jsonl", 3) == 0


def test_an_evaluation_appended_during_a_rewriting_trim_is_not_lost(tmp_path, monkeypatch):
    """The trim that must keep an eval record after dropped lines rewrites the file; an `evaluate` appending
    meanwhile waits for the lock, sees the file was replaced and appends to the new one."""
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"kind": "eval", "step": 1}\n')
    from sagan_cli.util import fsutil

    real = fsutil.atomic_write
    in_trim = threading.Event()

    def slow_write(*a, **k):
        in_trim.set()
        time.sleep(0.5)  # the appender is now blocked on the lock
        return real(*a, **k)

    monkeypatch.setattr(fsutil, "atomic_write", slow_write)
    trimmer = threading.Thread(target=trim_for_resume, args=(path, 1))
    trimmer.start()
    assert in_trim.wait(10)
    append_record(path, {"kind": "eval", "step": 1, "fid": 3.0})
    trimmer.join(10)
    assert _recs(path) == [{"step": 1}, {"kind": "eval", "step": 1}, {"kind": "eval", "step": 1, "fid": 3.0}]


@pytest.mark.skipif(metrics_file.fcntl is None, reason="no advisory locks on this OS")
def test_a_disk_full_rewrite_at_resume_is_one_line_and_the_run_does_not_start(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from sagan_cli.train.log import LogWriteError, TrainLogger

    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"kind": "eval", "step": 1}\n')

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("sagan_cli.util.fsutil.atomic_write", no_space)
    with pytest.raises(LogWriteError, match=r"^disk full while trimming .*metrics\.jsonl; the run did not start$"):
        TrainLogger(tmp_path, total_steps=4, start_step=1, tensorboard=False, console=Console(file=io.StringIO()))
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 3  # untouched
