"""`sagan plot`: a run's training curves as a PNG (several runs overlaid), and the timelapse of its sample grids."""

from __future__ import annotations

from pathlib import Path

import typer

from sagan_cli.cli import options
from sagan_cli.train.curves import X_AXES
from sagan_cli.util.errors import SaganError

XAxis = options.choices("XAxis", X_AXES)


def plot(
    ctx: typer.Context,
    run: list[str] | None = typer.Argument(None, metavar="RUN", help="Run directories to draw, overlaid (default: "
                                           "the newest run under --runs; 'latest' names it too)."),
    out: Path | None = typer.Option(None, help="PNG of the curves (default: curves.png; with --timelapse only when given)."),
    x: XAxis = typer.Option("step", "--x", help="Horizontal axis: step, or images (images seen)."),
    timelapse: Path | None = typer.Option(None, help="Animate the run's sample grids (samples/step-*.png) in step "
                                                     "order into this .gif or .webp."),
    scale: int = options.scale_option("the timelapse's frames"),
    fps: float = options.fps_option(4.0),
    frames: int | None = typer.Option(None, min=2, help="At most N sample grids in the timelapse, evenly spaced, the "
                                                        "first and the last included (default: all)."),
    runs: Path = options.runs_option(),
):
    """Draw a run's curves: losses, D outputs, attention γ, images/s and evaluations against steps."""
    from sagan_cli.util.images import ANIMATION_SUFFIXES

    options.png_out(out)
    if timelapse is not None and timelapse.suffix.lower() not in ANIMATION_SUFFIXES:
        raise SaganError(f"--timelapse {timelapse}: the timelapse is an animation, give a file name ending in .gif or .webp")
    for name in ("scale", "fps", "frames"):
        if timelapse is None and options.given(ctx, name) == "COMMANDLINE":
            raise SaganError(f"--{name} applies to the timelapse: give --timelapse FILE.gif (or .webp)")
    from sagan_cli.train import curves, timelapse as lapse
    from sagan_cli.util.fsutil import check_writable

    paths = curves.resolve_runs(list(run or []), runs)
    if timelapse is not None and len(paths) > 1:
        raise SaganError(f"--timelapse animates the sample grids of one run, got {len(paths)} runs: give one RUN")
    draw_curves, target = out is not None or timelapse is None, out or Path("curves.png")
    if not draw_curves and options.given(ctx, "x") == "COMMANDLINE":
        raise SaganError("--x sets the axis of the curves, which --timelapse alone does not draw: add --out curves.png")
    if draw_curves:
        check_writable(target)
    if timelapse is not None:
        check_writable(timelapse, "--timelapse")
        grids = lapse.plan(paths[0], scale, frames)  # before the curves: a failure leaves nothing written
    if draw_curves:
        records = curves.load_runs(paths)
        curves.draw(records, target, x.value)
        what = options.count(len(records), "run")
        evals = sum(len(r.evals) for r in records)
        ends = ", ".join(f"{r.name} to step {r.last_step}" for r in records)
        evals = f", {options.count(evals, 'evaluation')}" if evals else ""
        options.say(f"curves of {what} ({ends}{evals}) → {target}")
    if timelapse is not None:
        from sagan_cli.util.images import save_animation

        save_animation(lapse.frames(grids, scale), timelapse, fps, "--timelapse")
        every = len(lapse.sample_grids(paths[0]))
        of = f" of {every}" if every != len(grids) else ""
        options.say(f"timelapse of {options.count(len(grids), 'sample grid')}{of} of {paths[0].name} "
                    f"(steps {grids[0][0]}–{grids[-1][0]}, {fps:g} fps) → {timelapse}")
