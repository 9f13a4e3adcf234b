"""What the commands share: the options every command spells the same way, and small helpers.

Nothing here imports torch or NumPy (help and completion load this module).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from sagan_cli.util.device import DEVICE_HELP
from sagan_cli.util.errors import SaganError

ARGV: list[str] = []  # the words after `sagan`, for `train --nproc` to hand on to its processes


DEVICES = ("auto", "cpu", "cuda", "mps")  # and cuda:N; what --device <TAB> offers


def _complete_device(incomplete: str) -> list[str]:
    """--device <TAB>: the forms, with cuda:0..cuda:7 once 'cuda:' is typed (no torch import: it is a keystroke)."""
    forms = [*DEVICES, *(f"cuda:{i}" for i in range(8))] if incomplete.startswith("cuda:") else list(DEVICES)
    return [f for f in forms if f.startswith(incomplete)]


def device_option() -> typer.models.OptionInfo:
    return typer.Option("auto", "--device", help=f"{DEVICE_HELP}.", autocompletion=_complete_device)


def ckpt_argument() -> typer.models.ArgumentInfo:
    return typer.Argument(None, help="Checkpoint file or run directory (default: newest run's latest.pt under ./runs).")


def ema_option() -> typer.models.OptionInfo:
    return typer.Option(True, "--ema/--no-ema", help="Use the EMA generator (if the checkpoint has one).")


def choices(name: str, values) -> type[Enum]:
    """A str Enum of ``values`` (a table's keys), so Typer checks and completes them."""
    return Enum(name, {v: v for v in values}, type=str)


def given(ctx: typer.Context, name: str) -> str | None:
    """Where parameter ``name`` came from: 'COMMANDLINE', 'ENVIRONMENT', 'DEFAULT' (None if unknown)."""
    source = ctx.get_parameter_source(name)
    return source.name if source is not None else None


def explicit(ctx: typer.Context) -> set[str]:
    """The parameters the user set (on the command line or through their environment variable)."""
    return {name for name in ctx.params if given(ctx, name) in ("COMMANDLINE", "ENVIRONMENT")}


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 image', '2 images' (``plural`` for irregular nouns: count(1, 'entry', 'entries'))."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def png_out(path: Path | None, flag: str = "--out") -> Path | None:
    if path is not None and path.suffix.lower() != ".png":
        raise SaganError(f"{flag} {path}: output is written as PNG, give a file name ending in .png")
    return path


def say(text: str) -> None:
    """A line for the user on stdout, printed as given (no Rich markup or highlighting)."""
    from rich.console import Console

    Console(highlight=False, soft_wrap=True).print(text, markup=False)
