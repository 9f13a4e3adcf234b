"""`sagan export`: a checkpoint's generator alone (EMA, standing statistics applied) in a .safetensors or .pt file."""

from __future__ import annotations

from pathlib import Path

import typer

from sagan_cli.cli import options


def export(
    ckpt: str | None = options.ckpt_argument(),
    out: Path = typer.Option(Path("G.safetensors"), help="The file to write: .safetensors (no pickle at all) or .pt (torch.save, weights only)."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    ema: bool = options.ema_option(),
    standing: bool = options.standing_option(),
    runs: Path = options.runs_option(),
):
    """Write the generator alone, with its model config, for sharing and for sample, attn-map and evaluate."""
    from sagan_cli.train import export as core
    from sagan_cli.train.checkpoint import load_checkpoint
    from sagan_cli.train.runs import resolve_checkpoint_arg

    core.check_out(out, force)
    path = resolve_checkpoint_arg(ckpt, runs)
    meta = core.export(load_checkpoint(path), path, out, ema, standing)
    full, lean = path.stat().st_size, out.stat().st_size
    options.say(f"{'EMA' if ema else 'raw'} G of {path} (step {meta['step']}"
                f"{', standing statistics applied' if meta['standing_stats'] else ''}) → {out}: "
                f"{lean / 2**20:.2f} MiB, {lean / full:.0%} of the checkpoint's {full / 2**20:.2f} MiB")
