"""Progress output of prepare: a Rich bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import io

from conftest import assert_one_line_error
from sagan_cli.util import progress as report


def test_plain_lines_when_not_a_terminal(cli, monkeypatch):
    monkeypatch.setattr(report, "PLAIN_EVERY_S", 0.0)
    r = cli("prepare", "synthetic", "--imsize", 32, "--count", 300, "--workers", 1, "--out", "o")
    assert r.code == 0, r.stderr
    lines = [l for l in r.stdout.splitlines() if l.startswith("prepare: ")]
    assert lines and lines[-1].startswith("prepare: 300/300 (100%)") and "img/s" in lines[-1]
    assert "\x1b[" not in r.stdout  # no terminal control codes in logs


def test_rich_bar_on_a_terminal():
    from rich.console import Console

    buf = io.StringIO()
    rep = report.Reporter("prepare", 10, console=Console(file=buf, force_terminal=True, width=100))
    assert rep._progress is not None
    rep.update(10, note="1 skipped")
    rep.close()
    assert "10/10" in buf.getvalue() and "1 skipped" in buf.getvalue()


def test_download_bar_learns_its_total():
    from rich.console import Console

    rep = report.Reporter("download", None, unit="bytes", console=Console(file=io.StringIO(), force_terminal=True))
    rep.total = 5_000_000  # known once the server answers
    rep.update(1_000_000)
    assert rep._progress.tasks[0].total == 5_000_000
    rep.close()


def test_byte_progress_lines():
    from rich.console import Console

    buf = io.StringIO()
    rep = report.Reporter("download", 2_000_000, unit="bytes", console=Console(file=buf, force_terminal=False))
    rep.update(1_500_000)
    assert rep.line().startswith("download: 1.5 MB/2.0 MB (75%)")


def test_out_that_cannot_be_created_is_one_line(cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(cli("prepare", "synthetic", "--count", 10, "--out", tmp_path / "afile" / "ds"), "cannot write")
