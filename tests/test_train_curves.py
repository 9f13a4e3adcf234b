"""A run's curves: metrics.jsonl read whatever a killed run left, curves.png refreshed at every sample step of
`sagan train` (never stopping it), and `sagan plot` drawing one run or several, with evaluations and a timelapse."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from conftest import TINY
from sagan_cli.train import curves


def write_metrics(path, records, tail: str = ""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def rec(step, batch=8, **extra):
    base = {"step": step, "steps": 100, "images_seen": step * batch, "epoch": 0, "d_loss": 1.0 + step / 100,
            "g_loss": 2.0 - step / 100, "d_real": 0.5, "d_fake": -0.5, "gamma/g16": step / 1000,
            "gamma/g8": -step / 1000, "gamma/d4": 0.001, "img_per_s": 50.0}
    return base | extra


def evaluation(step, batch=8, **metrics):
    return {"kind": "eval", "step": step, "images_seen": step * batch, "ema": True, **metrics}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real `sagan train` run of 6 steps: a log record every step, a sample grid every 2 steps."""
    from conftest import make_images

    from sagan_cli.cli import main
    from sagan_cli.data.dataset import save_dataset

    root = tmp_path_factory.mktemp("curves-run")
    save_dataset(root / "data", make_images(64, 32), source="test", category=None, split=None)
    try:
        main(["train", *TINY, "--data", str(root / "data"), "--steps", "6", "--batch", "8", "--log-every", "1",
              "--sample-every", "2", "--no-standing-stats", "--runs", str(root / "runs")])
    except SystemExit as exc:
        assert not exc.code
    return root / "runs" / "00000-data"


# ------------------------------------------------------------------------------------------- reading
def test_a_torn_last_line_and_foreign_lines_are_skipped(tmp_path):
    path = write_metrics(tmp_path / "run" / "metrics.jsonl",
                         [rec(1), {"kind": "note", "step": 1}, evaluation(2, fid=40.0), rec(2)],
                         tail='not json\n[1, 2]\n{"step": 3, "d_lo')
    run = curves.read_metrics(path)
    assert run.rows == 2 and run.last_step == 2 and run.name == "run"
    assert [e["fid"] for e in run.evals] == [40.0]
    assert run.columns["d_loss"].tolist() == [1.01, 1.02]


def test_a_step_logged_twice_keeps_its_last_record_in_step_order(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", [rec(1), rec(3), rec(2, d_loss=7.0), rec(3, d_loss=9.0)])
    run = curves.read_metrics(path)
    assert run.columns["step"].tolist() == [1, 2, 3]
    assert run.columns["d_loss"].tolist() == [1.01, 7.0, 9.0]


def test_incremental_reads_pick_up_appended_and_completed_lines(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", [rec(1)], tail='{"step": 2, "d_loss"')
    assert curves.read_metrics(path, incremental=True).rows == 1
    with open(path, "a") as fh:  # the torn record completed, one more appended
        fh.write(': 5.0}\n' + json.dumps(rec(3)) + "\n")
    run = curves.read_metrics(path, incremental=True)
    assert run.columns["step"].tolist() == [1, 2, 3] and run.columns["d_loss"][1] == 5.0
    assert math.isnan(run.columns["g_loss"][1])  # a key a record lacks is NaN there, not a shifted column
    write_metrics(path, [rec(5)])  # replaced (a resume's rewrite): read again from the start
    assert curves.read_metrics(path, incremental=True).columns["step"].tolist() == [5]


def test_a_long_series_is_averaged_into_at_most_max_points(tmp_path, monkeypatch):
    monkeypatch.setattr(curves, "MAX_POINTS", 10)
    path = write_metrics(tmp_path / "metrics.jsonl", [rec(s, d_loss=float(s)) for s in range(1, 26)])
    xs, ys = curves._series(curves.read_metrics(path), "train", "d_loss", "step")
    assert len(xs) == 9  # bins of 3
    assert ys.tolist()[:2] == [2.0, 5.0] and ys.tolist()[-1] == 25.0 and xs.tolist() == ys.tolist()


# ------------------------------------------------------------------------------------------- drawing
def titles(fig):
    return [ax.get_title(loc="left") for ax in fig.axes if ax.get_visible() and ax.get_title(loc="left")]


def test_every_quantity_gets_a_panel_and_evaluations_theirs_when_present(tmp_path):
    path = write_metrics(tmp_path / "r" / "metrics.jsonl", [rec(s) for s in range(1, 5)])
    fig = curves.figure([curves.read_metrics(path)])
    assert titles(fig) == ["loss", "D output (mean logit)", "attention γ", "images/s"]
    gamma = next(ax for ax in fig.axes if ax.get_title(loc="left") == "attention γ")
    assert [t.get_text() for t in gamma.get_legend().get_texts()] == ["g8", "g16", "d4"]  # attn-map's order
    with open(path, "a") as fh:
        for step in (2, 4):
            fh.write(json.dumps(evaluation(step, fid=50.0 - step, kid_mean=0.1, is_mean=2.0, precision=0.5,
                                           recall=0.4, swd=30.0, swd_floor=3.0)) + "\n")
    fig = curves.figure([curves.read_metrics(path)])
    assert titles(fig)[4:] == ["FID", "KID", "IS", "precision / recall", "SWD ×1e3"]
    fid = next(ax for ax in fig.axes if ax.get_title(loc="left") == "FID")
    assert fid.lines[0].get_ydata().tolist() == [48.0, 46.0]


def test_several_runs_are_overlaid_one_colour_each_with_a_legend(tmp_path):
    a = curves.read_metrics(write_metrics(tmp_path / "00000-a" / "metrics.jsonl", [rec(s) for s in range(1, 4)]))
    b = curves.read_metrics(write_metrics(tmp_path / "00001-b" / "metrics.jsonl", [rec(s) for s in range(1, 7)]))
    fig = curves.figure([a, b])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["00000-a (step 3, 24 images seen)",
                                                                "00001-b (step 6, 48 images seen)"]
    loss = fig.axes[0]
    colours = {line.get_color() for line in loss.lines if len(line.get_xdata())}
    assert colours == {"C0", "C1"}
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["D loss", "G loss"]  # by line style


def test_images_seen_label_the_runs_and_can_be_the_horizontal_axis(tmp_path):
    a = curves.read_metrics(write_metrics(tmp_path / "a" / "metrics.jsonl", [rec(s, batch=5000) for s in range(1, 4)]))
    assert curves.figure([a])._suptitle.get_text() == "a · step 3 · 15k images seen"
    fig = curves.figure([a], x="images")
    assert fig.axes[0].lines[0].get_xdata().tolist() == [5000, 10000, 15000]
    assert fig.axes[0].get_xlabel() == "images seen"


# ------------------------------------------------------------------------------------------- training
def test_training_refreshes_curves_png_at_each_sample_step(tiny_run):
    png = tiny_run / "curves.png"
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 600 and im.size[1] > 400
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 10  # drawn, not blank
    assert sorted(p.name for p in tiny_run.iterdir() if p.name.startswith(".curves")) == []  # no temporary file


def test_each_sample_step_redraws_it_and_a_failure_is_one_warning_line(cli, tiny_dataset, tmp_path, monkeypatch):
    from sagan_cli.train import loop
    from sagan_cli.util.errors import SaganError

    steps = []

    def failing_draw(runs, out, x="step", flag=""):
        steps.append(runs[0].last_step)
        raise SaganError(f"disk full while writing {out}; nothing was written under that name, free some space")

    monkeypatch.setattr(curves, "draw", failing_draw)
    assert loop.refresh_curves is curves.refresh  # the trainer's hook is this module's refresh
    r = cli("train", *TINY, "--data", tiny_dataset, "--steps", "5", "--batch", "8", "--sample-every", "2",
            "--log-every", "1", "--no-standing-stats")
    assert r.code == 0, r.stderr
    assert steps == [2, 4, 5]  # every sample step, the final one included, with the records logged so far
    warnings = [ln for ln in r.stdout.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 3 and "Traceback" not in r.stdout + r.stderr
    assert warnings[0] == ("warning: curves.png not refreshed (disk full while writing runs/00000-tiny-32/curves.png; "
                           "nothing was written under that name, free some space); training goes on")
    assert (tmp_path / "runs" / "00000-tiny-32" / "checkpoints" / "step-0000005.pt").exists()


def test_no_curve_before_two_training_records(tmp_path):
    path = write_metrics(tmp_path / "metrics.jsonl", [rec(1)], tail='{"step": 2')
    assert curves.refresh(tmp_path, print) is None and not (tmp_path / "curves.png").exists()
    with open(path, "a") as fh:
        fh.write("}\n")
    assert curves.refresh(tmp_path, print) == tmp_path / "curves.png" and (tmp_path / "curves.png").exists()


def test_without_matplotlib_training_says_so_once(tmp_path, monkeypatch):
    import sys

    path = write_metrics(tmp_path / "metrics.jsonl", [rec(1), rec(2)])
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)  # import matplotlib... → ImportError
    monkeypatch.setattr(curves, "_unavailable", [])
    heard = []
    assert curves.refresh(path.parent, heard.append) is None
    assert curves.refresh(path.parent, heard.append) is None
    assert len(heard) == 1 and "pip install matplotlib" in heard[0] and not (tmp_path / "curves.png").exists()


# ------------------------------------------------------------------------------------------- sagan plot
def test_plot_draws_the_newest_run_by_default_and_survives_a_torn_line(cli, tiny_run, tmp_path):
    with open(tiny_run / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 7, "d_loss": 0.')  # what a kill mid-write leaves
    r = cli("plot", "--runs", tiny_run.parent)
    assert r.code == 0, r.stderr
    assert "curves of 1 run (00000-data to step 6)" in r.stdout and "curves.png" in r.stdout
    with Image.open(tmp_path / "curves.png") as im:
        assert im.format == "PNG" and np.asarray(im.convert("L")).std() > 10
    assert cli("plot", "latest", "--runs", tiny_run.parent, "--out", "same.png").code == 0


def test_plot_overlays_runs_given_by_directory(cli, tiny_run, tmp_path):
    other = write_metrics(tmp_path / "00007-other" / "metrics.jsonl", [rec(1), rec(2), rec(3), evaluation(3, fid=12.5)])
    r = cli("plot", tiny_run, other.parent, "--out", "both.png", "--x", "images")
    assert r.code == 0, r.stderr
    assert "curves of 2 runs (00000-data to step 6, 00007-other to step 3, 1 evaluation) → both.png" in r.stdout
    assert (tmp_path / "both.png").stat().st_size > 10_000
    r = cli("plot", other)  # the metrics.jsonl file itself names its run
    assert r.code == 0 and "00007-other to step 3" in r.stdout


def test_timelapse_has_one_frame_per_sample_grid_in_step_order(cli, tiny_run, tmp_path):
    r = cli("plot", tiny_run, "--timelapse", "grow.gif", "--scale", "2", "--fps", "5")
    assert r.code == 0, r.stderr
    assert "timelapse of 3 sample grids of 00000-data (steps 2–6, 5 fps) → grow.gif" in r.stdout
    assert not (tmp_path / "curves.png").exists()  # --timelapse alone draws no curves
    with Image.open(tiny_run / "samples" / "step-0000002.png") as first:
        w, h = first.size
    with Image.open(tmp_path / "grow.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (2 * w, 2 * h + 18)  # upscaled, plus the 'step N' strip
        assert gif.info["duration"] == 200 and gif.info["loop"] == 0
        frames = []
        for i in range(3):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
    with Image.open(tiny_run / "samples" / "step-0000004.png") as grid:
        expected = np.asarray(grid.convert("RGB")).repeat(2, 0).repeat(2, 1).astype(int)
    assert np.abs(frames[1][: 2 * h].astype(int) - expected).mean() < 8  # frame 2 is step 4 (GIF: 256 colours)
    r = cli("plot", tiny_run, "--timelapse", "grow.webp", "--out", "c.png")
    assert r.code == 0 and (tmp_path / "c.png").exists()
    with Image.open(tmp_path / "grow.webp") as webp:
        assert webp.n_frames == 3


def test_frames_keeps_evenly_spaced_grids_with_the_first_and_last(cli, tiny_run, tmp_path, monkeypatch):
    from sagan_cli.train.timelapse import pick

    assert pick(list(range(10)), 4) == [0, 3, 6, 9] and pick([1, 2], 4) == [1, 2]
    r = cli("plot", tiny_run, "--timelapse", "two.gif", "--frames", "2")
    assert r.code == 0, r.stderr
    assert "timelapse of 2 sample grids of 3 of 00000-data (steps 2–6, 4 fps)" in r.stdout
    with Image.open(tmp_path / "two.gif") as gif:
        assert gif.n_frames == 2
    from sagan_cli.util import images

    monkeypatch.setattr(images, "MAX_OUTPUT_BYTES", 1 << 20)  # too many pixels: refused before decoding
    r = cli("plot", tiny_run, "--timelapse", "big.gif", "--scale", "4")
    assert r.code == 2 and "lower --scale or pass --frames N" in r.stderr and not (tmp_path / "big.gif").exists()


def test_a_timelapse_that_cannot_be_made_leaves_no_curves_behind(cli, tmp_path):
    run = write_metrics(tmp_path / "00000-early" / "metrics.jsonl", [rec(1), rec(2)]).parent  # no sample grid yet
    r = cli("plot", run, "--out", "c.png", "--timelapse", "g.gif")
    assert r.code == 2 and "has no sample grids yet" in r.stderr
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "g.gif").exists()
