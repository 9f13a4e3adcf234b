"""`sagan info`: what a checkpoint, a run's newest checkpoint or an exported generator holds."""

from __future__ import annotations

from pathlib import Path

import typer

from sagan_cli.cli import options


def info(
    ckpt: str | None = typer.Argument(None, metavar="CKPT|RUN", help="Checkpoint file, run directory (its newest "
                                      "checkpoint) or exported generator (default: newest run's latest.pt under ./runs)."),
    json_out: bool = typer.Option(False, "--json", help="Print everything as one JSON object instead of lines."),
    runs: Path = options.runs_option(),
):
    """Describe a checkpoint: step, images seen, model and its parameters, training options, data, last metrics."""
    import json

    from sagan_cli.train.checkpoint import load_checkpoint
    from sagan_cli.train.info import describe, lines
    from sagan_cli.train.runs import resolve_checkpoint_arg

    path = resolve_checkpoint_arg(ckpt, runs)
    found = describe(path, load_checkpoint(path))
    if json_out:
        print(json.dumps(found, indent=2, sort_keys=True))
        return
    for line in lines(found):
        options.say(line)
